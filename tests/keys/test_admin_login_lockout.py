"""Admin login throttling (django-axes): repeated failures for one username from one address lock
that pair out, even with the right password; other usernames are unaffected; both are audited."""

from __future__ import annotations

import re

import httpx

from keys.models import AuditEntry
from keys.roles import PLATFORM_OPERATOR_GROUP
from tests.conftest import role_user
from tests.support.gateway import GatewayServer


def attempt_login(base_url: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        page = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token
        return client.post(
            "/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{base_url}/admin/login/"},
        )


def test_five_failed_logins_lock_the_user_out_from_that_address_and_are_audited(
    admin_gateway: GatewayServer,
) -> None:
    role_user("olga", "operator-pass-1", PLATFORM_OPERATOR_GROUP)
    role_user("oscar", "operator-pass-2", PLATFORM_OPERATOR_GROUP)
    base = admin_gateway.base_url
    for _ in range(4):
        assert attempt_login(base, "olga", "wrong").status_code == 200  # the form again, with an error
    locked = attempt_login(base, "olga", "wrong")
    assert locked.status_code == 429
    assert attempt_login(base, "olga", "operator-pass-1").status_code == 429  # even the right password
    assert attempt_login(base, "oscar", "operator-pass-2").status_code == 302  # another user logs in

    failures = AuditEntry.objects.filter(action="admin.login_failed", target_repr="olga")
    assert failures.count() >= 5
    assert all(entry.after and entry.after["address"] == "127.0.0.1" for entry in failures)
    lockout = AuditEntry.objects.filter(action="admin.lockout", target_repr="olga").first()
    assert lockout is not None and lockout.after is not None and lockout.after["failures"] == 5
    assert attempt_login(base, "nobody", "x").status_code == 200  # unknown users: a form, no 500

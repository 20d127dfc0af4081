"""The app serves its own static files (WhiteNoise at the ASGI level): compressed, cached for a year
under hashed names, 404 for unknown ones, and the admin pages load them styled in a real browser."""

from __future__ import annotations

import re

import httpx
import pytest
from django.contrib.auth.models import User

from keys.services import CreatedKey
from tests.support.browser import admin_browser, in_browser_thread
from tests.support.gateway import GatewayServer


def test_hashed_static_files_are_compressed_and_cached_for_a_year(gateway: GatewayServer) -> None:
    login = httpx.get(f"{gateway.base_url}/admin/login/")
    css_path = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
    assert css_path, "the admin links its stylesheet under a hashed name"
    hashed = httpx.get(f"{gateway.base_url}{css_path.group(1)}", headers={"Accept-Encoding": "gzip"})
    assert hashed.status_code == 200
    assert hashed.headers["content-type"].startswith("text/css")
    assert hashed.headers["content-encoding"] == "gzip"
    assert "immutable" in hashed.headers["cache-control"]
    assert "max-age=315360000" in hashed.headers["cache-control"]
    assert b"--header-bg" in hashed.content  # httpx decoded the gzip body
    plain = httpx.get(
        f"{gateway.base_url}/static/admin/css/base.css", headers={"Accept-Encoding": "identity"}
    )
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert "immutable" not in plain.headers["cache-control"]
    assert int(hashed.headers["content-length"]) < len(plain.content) / 2  # sent compressed
    again = httpx.get(
        f"{gateway.base_url}{css_path.group(1)}", headers={"If-None-Match": hashed.headers["etag"]}
    )
    assert again.status_code == 304
    assert httpx.get(f"{gateway.base_url}/static/admin/css/nope.css").status_code == 404
    assert httpx.post(f"{gateway.base_url}{css_path.group(1)}").status_code == 405


@pytest.mark.browser
def test_every_admin_page_an_operator_opens_is_styled_with_no_broken_asset(
    admin_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    User.objects.create_superuser("olga-operator", password="operator-pass-1")
    key = acme_key.api_key
    pages = {
        "operator-tenant-page": f"/admin/keys/tenant/{key.tenant_id}/change/",
        "operator-key-page": f"/admin/keys/apikey/{key.pk}/change/",
        "operator-audit-log": "/admin/keys/auditentry/",
        "operator-users": "/admin/auth/user/",
        "operator-index": "/admin/",
        "operator-tenants": "/admin/keys/tenant/",
        "operator-tenant-add": "/admin/keys/tenant/add/",
        "operator-keys": "/admin/keys/apikey/",
        "operator-key-add": "/admin/keys/apikey/add/",
        "operator-templates": "/admin/templates_app/prompttemplate/",
        "operator-template-add": "/admin/templates_app/prompttemplate/add/",
        "operator-catalog": "/admin/routing/catalogmodel/",
        "operator-usage-events": "/admin/usage/usageevent/",
        "operator-usage-report": "/admin/usage/usagereport/",
    }

    def browse() -> None:
        with admin_browser(admin_gateway.base_url) as browser:
            browser.login("olga-operator", "operator-pass-1")
            for name, path in pages.items():
                page = browser.visit(path, name)
                if name == "operator-catalog":
                    text = page.inner_text("#content")
                    assert "Providers configured now" in text and "OpenAI ✓" in text
                    assert "INPUT $/1M TOK" in text.upper() and "$2.50" in text  # gpt-4o's input price

    in_browser_thread(browse)

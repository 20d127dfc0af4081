"""The operator's CLI: keys created, rotated and revoked from `manage.py`, usable over HTTP at once."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command

from keys.models import ApiKey, Tenant
from keys.tokens import token_hash, token_is_well_formed
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def api_status(gateway: GatewayServer, plaintext: str) -> int:
    url = f"{gateway.base_url}/v1/chat/completions"
    return httpx.post(url, json=chat_body(), headers={"Authorization": f"Bearer {plaintext}"}).status_code


def test_create_rotate_and_revoke_from_the_command_line(gateway: GatewayServer) -> None:
    run("create_tenant", "initech", "--spend-cap-usd", "12.5", "--spend-cap-period", "daily", "--hard-cap")
    tenant = Tenant.objects.get(name="initech")
    assert (tenant.spend_cap_usd, tenant.spend_cap_period, tenant.hard_cap) == (
        Decimal("12.5"),
        "daily",
        True,
    )

    output = run(
        "create_api_key", "--tenant", "initech", "--name", "batch", "--rpm", "5",
        "--allowed-model", "openai/gpt-4o-mini", "--spend-cap-usd", "1", "--hard-cap",
    )  # fmt: skip
    plaintext = output.strip().splitlines()[-1]
    assert token_is_well_formed(plaintext)
    key = ApiKey.objects.get(key_hash=token_hash(plaintext))
    assert (key.rpm, key.allowed_models, key.hard_cap) == (5, ["openai/gpt-4o-mini"], True)
    assert plaintext not in ApiKey.objects.filter(pk=key.pk).values_list("prefix", flat=True)[0]
    assert api_status(gateway, plaintext) == 200

    successor = run("rotate_api_key", key.prefix).strip().splitlines()[-1]
    assert token_is_well_formed(successor) and successor != plaintext
    assert api_status(gateway, plaintext) == 403
    assert api_status(gateway, successor) == 200

    new_key = ApiKey.objects.get(key_hash=token_hash(successor))
    run("revoke_api_key", new_key.prefix)
    assert api_status(gateway, successor) == 403


def test_commands_refuse_unknown_or_ambiguous_keys(tenant_acme: Tenant) -> None:
    with pytest.raises(CommandError, match="No key"):
        run("revoke_api_key", "rsk_NOPE")
    run("create_api_key", "--tenant", "acme")
    run("create_api_key", "--tenant", "acme")
    with pytest.raises(CommandError, match="More than one"):
        run("revoke_api_key", "rsk_")
    with pytest.raises(CommandError, match="at least 1"):
        run("create_api_key", "--tenant", "acme", "--rpm", "0")

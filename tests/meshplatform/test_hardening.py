"""The deployment, hardened: ALLOWED_HOSTS on every path, slow or short bodies cut with 408,
production settings (HTTPS redirect, HSTS, secure cookies) and `check --deploy` clean."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.routing.test_error_envelopes import assert_envelope
from tests.support.gateway import REPO_ROOT, GatewayServer


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/templates"),
        ("GET", "/v1/usage"),
        ("GET", "/v1/no-such-path"),
        ("GET", "/healthz"),
    ],
)
def test_a_host_not_allowed_is_a_json_400_on_every_api_path(
    api_url: str, acme_http: httpx.Client, simulator: SimulatorServer, method: str, path: str
) -> None:
    base = api_url.removesuffix("/v1")
    response = acme_http.request(method, f"{base}{path}", json=chat_body(), headers={"Host": "evil.example"})
    error = assert_envelope(response, 400, "bad_request")
    assert error["param"] == "Host"
    assert simulator.requests() == []
    forwarded = acme_http.request(
        method, f"{base}{path}", json=chat_body(), headers={"X-Forwarded-Host": "evil.example"}
    )
    assert forwarded.status_code != 400 or forwarded.json()["error"]["code"] != "bad_request"


def test_a_host_not_allowed_on_the_admin_is_a_plain_400(api_url: str) -> None:
    response = httpx.get(f"{api_url.removesuffix('/v1')}/admin/login/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "Host" in response.text


def _raw_request(port: int, head: bytes, trickle: bool) -> tuple[float, bytes]:
    """Sends `head` and the start of a body, then (if `trickle`) 10 more bytes a second, until the
    gateway answers; (seconds until the answer, the answer's first bytes)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b'{"model": "openai/gpt-4o-mini", "messages": [')
        answer = b""
        while not answer and time.monotonic() - started < 30:
            if trickle:
                sock.sendall(b" " * 10)
            sock.settimeout(1.0 if trickle else 30)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
        elapsed = time.monotonic() - started
        sock.settimeout(10)
        while chunk := sock.recv(65536):  # the rest of the answer, until the gateway closes
            answer += chunk
    return elapsed, answer


@pytest.mark.parametrize("trickle", [False, True], ids=["stops-short", "trickles"])
def test_a_slow_or_short_body_is_cut_with_408(
    gateway: GatewayServer, acme_http: httpx.Client, simulator: SimulatorServer, trickle: bool
) -> None:
    auth = acme_http.headers["Authorization"]
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n"
    ).encode()
    elapsed, answer = _raw_request(gateway.port, head, trickle)  # trickling: 10 bytes/s, under 50 kB/s
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b'"code":"request_timeout"' in answer
    assert 4.5 < elapsed < 15, elapsed  # MESH_BODY_READ_GRACE_S (5 s) + 2,000 bytes at 50 kB/s
    assert simulator.requests() == []
    assert acme_http.post("/chat/completions", json=chat_body()).status_code == 200


@pytest.fixture
def production_gateway(simulator: SimulatorServer, django_db_setup: Any) -> Iterator[GatewayServer]:
    env = gateway_env(
        simulator,
        DJANGO_SETTINGS_MODULE="meshplatform.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="false",
    )
    server = GatewayServer(env=env, workers=1)
    server.start()
    yield server
    server.stop()


def test_production_sends_browsers_to_https_with_hsts_and_secure_cookies(
    production_gateway: GatewayServer,
) -> None:
    login = f"{production_gateway.base_url}/admin/login/"
    redirect = httpx.get(login)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://127.0.0.1:{production_gateway.port}/admin/login/"
    behind_tls = httpx.get(login, headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.status_code == 200
    assert behind_tls.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert behind_tls.headers["x-frame-options"] == "DENY"
    cookie = behind_tls.headers["set-cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie
    # API clients are never redirected (a POST would lose its body): TLS is the proxy's job there.
    assert httpx.get(f"{production_gateway.base_url}/healthz").status_code == 200


def test_check_deploy_is_clean_at_warning_level(simulator: SimulatorServer, django_db_setup: Any) -> None:
    env = gateway_env(
        simulator,
        DJANGO_SETTINGS_MODULE="meshplatform.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout

"""Each envelope code the gateway answers arrives as its own exception class, carrying
status_code, code, request_id and the envelope (sync and async, JSON and streams)."""

from __future__ import annotations

import asyncio
import socket
import threading
from decimal import Decimal
from typing import Any

import meshapi
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create, api_key_revoke
from simulator.server import SimulatorServer, free_port

MINI = "openai/gpt-4o-mini"


def params(**fields: Any) -> meshapi.ChatCompletionParams:
    fields.setdefault("model", MINI)
    fields.setdefault("messages", [meshapi.ChatMessage(role="user", content="Say hello")])
    return meshapi.ChatCompletionParams(**fields)


def client(base_url: str, token: str, **kwargs: Any) -> meshapi.MeshAPI:
    kwargs.setdefault("timeout", 30)
    return meshapi.MeshAPI(base_url=base_url, token=token, max_retries=0, **kwargs)


def assert_carries_the_envelope(error: meshapi.APIStatusError, status: int, code: str) -> None:
    assert error.status_code == status
    assert error.code == code
    assert error.envelope is not None and error.envelope.error.code == code
    assert error.request_id and error.request_id == error.envelope.request_id
    assert error.request_id == error.headers["x-request-id"]
    assert error.message == error.envelope.error.message


def test_401_is_authentication_error(mesh_url: str, gateway: Any) -> None:
    with (
        client(mesh_url, "rsk_01JNOTAREALKEY0000000000000") as mesh,
        pytest.raises(meshapi.AuthenticationError) as caught,
    ):
        mesh.chat.completions.create(params())
    assert_carries_the_envelope(caught.value, 401, "unauthorized")


def test_403_is_permission_denied(mesh_url: str, acme_key: CreatedKey) -> None:
    api_key_revoke(api_key=acme_key.api_key)
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.PermissionDeniedError) as caught:
        mesh.chat.completions.create(params())
    assert_carries_the_envelope(caught.value, 403, "forbidden")


def test_402_is_spend_limit_error(mesh_url: str, tenant_acme: Tenant) -> None:
    capped = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=Decimal(0))
    with client(mesh_url, capped.plaintext) as mesh, pytest.raises(meshapi.SpendLimitError) as caught:
        mesh.chat.completions.create(params())
    assert_carries_the_envelope(caught.value, 402, "spend_limit_exceeded")


def test_404_is_not_found(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.NotFoundError) as caught:
        mesh.chat.completions.create(params(model="openai/no-such-model"))
    assert_carries_the_envelope(caught.value, 404, "model_not_found")


def test_404_of_a_template_is_not_found(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.NotFoundError) as caught:
        mesh.templates.retrieve("no-such-template")
    assert caught.value.status_code == 404 and caught.value.request_id


def test_409_is_conflict(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh:
        mesh.templates.create(name="twice", messages=[{"role": "system", "content": "x"}])
        with pytest.raises(meshapi.ConflictError) as caught:
            mesh.templates.create(name="twice", messages=[{"role": "system", "content": "y"}])
    assert caught.value.status_code == 409 and caught.value.code == "conflict"
    assert caught.value.param == "name" and caught.value.request_id


def test_422_is_validation_error_with_details(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.ValidationError) as caught:
        mesh.chat.completions.create(params(temperature=5))
    error = caught.value
    assert_carries_the_envelope(error, 422, "validation_error")
    assert error.param == "temperature"
    assert [d.loc for d in error.details] == [["body", "temperature"]]
    assert error.details[0].msg and error.details[0].type


def test_429_is_rate_limit_error_with_retry_after(mesh_url: str, tenant_acme: Tenant) -> None:
    limited = api_key_create(tenant=tenant_acme, name="one a minute", rpm=1)
    with client(mesh_url, limited.plaintext) as mesh:
        mesh.chat.completions.create(params())
        with pytest.raises(meshapi.RateLimitError) as caught:
            mesh.chat.completions.create(params())
    error = caught.value
    assert_carries_the_envelope(error, 429, "rate_limit_exceeded")
    assert error.retry_after is not None and 0 < error.retry_after <= 60
    assert error.retry_after == float(error.headers["retry-after"])


def test_502_is_upstream_error_with_provider_error(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.UpstreamError) as caught:
        mesh.chat.completions.create(params(mock={"status": 500}))
    error = caught.value
    assert_carries_the_envelope(error, 502, "upstream_error")
    assert error.provider_error is not None
    assert (error.provider_error.provider, error.provider_error.status) == ("openai", 500)


def test_503_is_provider_not_available(mesh_url: str, acme_key: CreatedKey) -> None:
    with (
        client(mesh_url, acme_key.plaintext) as mesh,
        pytest.raises(meshapi.ProviderNotAvailableError) as caught,
    ):
        mesh.chat.completions.create(params(model="anthropic/claude-haiku-4-5"))
    assert_carries_the_envelope(caught.value, 503, "provider_not_available")


def test_504_is_gateway_timeout(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.GatewayTimeoutError) as caught:
        mesh.chat.completions.create(params(timeout=0.5, mock={"delay_s": 3}))
    assert_carries_the_envelope(caught.value, 504, "gateway_timeout")


def test_unreachable_gateway_is_api_connection_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with client(closed, "rsk_x") as mesh, pytest.raises(meshapi.APIConnectionError) as caught:
        mesh.models.list()
    assert caught.value.status_code is None and caught.value.request_id is None


def test_client_timeout_is_api_timeout_error(mesh_url: str, acme_key: CreatedKey) -> None:
    with client(mesh_url, acme_key.plaintext, timeout=0.5) as mesh, pytest.raises(meshapi.APITimeoutError):
        mesh.chat.completions.create(params(mock={"delay_s": 3}))


def test_every_error_is_a_mesh_api_error() -> None:
    for cls in (
        meshapi.AuthenticationError, meshapi.PermissionDeniedError, meshapi.SpendLimitError,
        meshapi.NotFoundError, meshapi.ValidationError, meshapi.RateLimitError, meshapi.UpstreamError,
        meshapi.ProviderNotAvailableError, meshapi.GatewayTimeoutError, meshapi.APIConnectionError,
    ):  # fmt: skip
        assert issubclass(cls, meshapi.MeshAPIError)


def test_stream_ending_with_an_error_chunk_raises_the_mapped_error(
    mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    seen: list[str] = []
    with client(mesh_url, acme_key.plaintext) as mesh, pytest.raises(meshapi.UpstreamError) as caught:
        for chunk in mesh.chat.completions.stream(params(mock={"chunks": 10, "drop_after_chunks": 3})):
            seen.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    error = caught.value
    assert "".join(seen).startswith("Simulated")
    assert error.status_code == 502 and error.code == "upstream_error"
    assert error.provider_error is not None and error.provider_error.provider == "openai"
    assert error.request_id and error.request_id == error.headers["x-request-id"]
    assert len([r for r in simulator.requests() if r["path"].endswith("/chat/completions")]) == 1


def test_stream_refused_before_the_first_byte_raises_at_first_iteration(
    mesh_url: str, acme_key: CreatedKey
) -> None:
    with client(mesh_url, acme_key.plaintext) as mesh:
        stream = mesh.chat.completions.stream(params(model="openai/no-such-model"))
        with pytest.raises(meshapi.NotFoundError) as caught:
            next(stream)
    assert_carries_the_envelope(caught.value, 404, "model_not_found")


def test_async_client_maps_errors_too(mesh_url: str, acme_key: CreatedKey) -> None:
    async def run() -> tuple[meshapi.ValidationError, meshapi.UpstreamError]:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext, max_retries=0) as mesh:
            with pytest.raises(meshapi.ValidationError) as invalid:
                await mesh.chat.completions.create(params(temperature=5))
            with pytest.raises(meshapi.UpstreamError) as broken:
                async for _ in mesh.chat.completions.stream(params(mock={"drop_after_chunks": 2})):
                    pass
            return invalid.value, broken.value

    invalid, broken = asyncio.run(run())
    assert_carries_the_envelope(invalid, 422, "validation_error")
    assert invalid.details[0].loc == ["body", "temperature"]
    assert broken.status_code == 502 and broken.request_id


class RawServer:
    """Answers every request with the same raw HTTP bytes (a proxy in front of the gateway)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(self.answer)


def test_a_non_json_error_maps_by_status_and_is_retried() -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    proxy = RawServer(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n"
        + f"Content-Length: {len(html)}\r\n\r\n".encode()
        + html
    )
    mesh = meshapi.MeshAPI(base_url=proxy.url, token="rsk_x", max_retries=1)
    with mesh, pytest.raises(meshapi.UpstreamError) as caught:
        mesh.chat.completions.create(params())
    proxy.sock.close()
    error = caught.value
    assert (error.status_code, error.code, error.envelope) == (502, None, None)
    assert "502 Bad Gateway" in error.message
    assert proxy.requests == 2


def test_an_openai_format_error_body_maps_by_status(simulator: SimulatorServer) -> None:
    """A server answering in OpenAI's error format (here the upstream itself): the status decides."""
    simulator.reset()
    simulator.script(times=1, status=404, error_message="no route")
    with client(simulator.base_url, "rsk_x") as mesh, pytest.raises(meshapi.NotFoundError) as caught:
        mesh.chat.completions.create(params())
    assert caught.value.status_code == 404
    assert "no route" in caught.value.message

"""Webhook delivery: where a job's outcome may be sent, how it is signed, and one delivery try.

A webhook URL is client input that makes the gateway open a connection, so it is checked
twice: its shape at submission (https; http only to loopback when
MESH_WEBHOOK_ALLOW_LOOPBACK is on, as in tests and dev), and the *resolved* addresses
at each delivery: every address the name resolves to must be public (no private, loopback,
link-local, multicast, reserved or unspecified ones, unless loopback is allowed), and the
connection is then made to the checked address itself (Host header and TLS SNI/certificate
check keep the name), so a DNS answer that changes between check and connect (rebinding)
cannot redirect it.

Receivers verify `Mesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
with their tenant's secret (Django admin → Webhook secrets) and reject stale timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from meshplatform.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(Exception):
    """The target may never be called (a permanent failure: no retry)."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked URL and the address the delivery connects to."""

    url: str
    host: str
    address: IPAddress
    port: int

    def pinned_url(self) -> str:
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, ""))


def _loopback_allowed() -> bool:
    return bool(settings.MESH_WEBHOOK_ALLOW_LOOPBACK)


def webhook_url_validate(url: str) -> str:
    """The URL's shape, at submission (422 otherwise); addresses are checked at delivery."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("webhook_url is not a valid URL.", param="webhook_url") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise BadRequest("webhook_url must be an https:// URL.", param="webhook_url")
    if parts.username or parts.password:
        raise BadRequest("webhook_url must not carry credentials.", param="webhook_url")
    if parts.fragment:
        raise BadRequest("webhook_url must not have a #fragment.", param="webhook_url")
    if port == 0:
        raise BadRequest("webhook_url has an invalid port.", param="webhook_url")
    literal = _literal(host)
    if literal is not None:  # a literal address can be refused right away
        try:
            _check_address(literal)
        except WebhookRefused as refusal:
            raise BadRequest(f"webhook_url: {refusal}.", param="webhook_url") from None
    if parts.scheme == "http" and not (_loopback_allowed() and _is_loopback_name(host, literal)):
        raise BadRequest(
            "webhook_url must be an https:// URL (http is accepted only for loopback in development).",
            param="webhook_url",
        )
    if len(url) > 2000:
        raise BadRequest("webhook_url is longer than 2000 characters.", param="webhook_url")
    return url


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback_name(host: str, literal: IPAddress | None) -> bool:
    return (literal is not None and literal.is_loopback) or host == "localhost"


def _check_address(address: IPAddress) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback and _loopback_allowed():
        return
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        raise WebhookRefused(f"webhook target address {address} is not a public address")


def webhook_target_resolve(url: str) -> WebhookTarget:
    """Resolve the URL's host and check every address it resolves to; the delivery pins the first."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "http" and not _loopback_allowed():
        raise WebhookRefused("webhook URLs must be https")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConnectionError(f"cannot resolve {host}: {error}") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise ConnectionError(f"{host} resolves to no address")
    for address in addresses:
        _check_address(address)
    if parts.scheme == "http" and not all(a.is_loopback for a in addresses):
        raise WebhookRefused("http webhooks may only target loopback")
    return WebhookTarget(url=url, host=host, address=addresses[0], port=port)


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_send(*, url: str, secret: str, body: bytes, event_id: str) -> DeliveryResult:
    """One signed POST to the checked, pinned address; never follows redirects."""
    target = webhook_target_resolve(url)  # WebhookRefused propagates: permanent
    timestamp = int(time.time())
    default_port = 443 if urlsplit(url).scheme == "https" else 80
    headers = {
        "Host": target.host if target.port == default_port else f"{target.host}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": "Mesh-Webhooks/1",
        "Mesh-Webhook-Id": event_id,
        "Mesh-Timestamp": str(timestamp),
        "Mesh-Signature": webhook_sign(secret=secret, timestamp=timestamp, body=body),
    }
    try:
        with httpx.Client(timeout=settings.MESH_WEBHOOK_TIMEOUT_S, follow_redirects=False) as client:
            response = client.post(
                target.pinned_url(), content=body, headers=headers, extensions={"sni_hostname": target.host}
            )
    except httpx.HTTPError as error:
        return DeliveryResult(status_code=None, error=f"{type(error).__name__}: {error}"[:500])
    if 200 <= response.status_code < 300:
        return DeliveryResult(status_code=response.status_code, error=None)
    return DeliveryResult(status_code=response.status_code, error=f"receiver answered {response.status_code}")

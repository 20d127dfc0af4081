"""DRF authentication for the management APIs: the same bearer keys as the proxy."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from keys.auth import api_key_authenticate_sync
from keys.types import ResolvedKey
from meshplatform.actors import Actor, actor_set


class ApiKeyUser:
    """What `request.user` is on the management APIs: the key, scoped to its tenant."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key: ResolvedKey) -> None:
        self.key = key
        self.tenant_id = key.tenant_id


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ResolvedKey]:
        key = api_key_authenticate_sync(authorization=request.META.get("HTTP_AUTHORIZATION"))
        label = f"api key {key.key_prefix}…" + (f" ({key.key_name})" if key.key_name else "")
        actor_set(Actor(source="api", resolve_name=lambda: label))  # the audit log's actor (keys/audit.py)
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="mesh"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The served document's security scheme for the management APIs: the proxy's bearer keys."""

    target_class = ApiKeyAuthentication
    name = "HTTPBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


def request_key(request: Any) -> ResolvedKey:
    """The authenticated key of a DRF request."""
    key: ResolvedKey = request.auth
    return key

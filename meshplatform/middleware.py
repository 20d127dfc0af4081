"""Async-native middleware: request ids on every response, Django's browser stack on admin pages only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase
from django.utils.module_loading import import_string

from meshplatform import tracing
from meshplatform.errors import BadHost, error_response
from meshplatform.framework import database_request_end, database_request_start
from meshplatform.request_ids import new_request_id, request_id_of

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
MAX_REMEMBERED_HOSTS = 256


class RequestIdMiddleware:
    """Gives every request a fresh id (never the client's: ids key the usage ledger)."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        tracing.server_request_id(request_id)
        response = await self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class RequestScopeMiddleware:
    """What each kind of path needs around it, and nothing more.

    - First, on every path: ALLOWED_HOSTS (Django checks it only when something calls
      `get_host()`, which the proxy's paths never do), the envelope's 400 on API paths. The
      verdict per Host header is remembered (a few distinct values in practice, bounded), so
      the hot path pays one dict lookup. (Here rather than in a middleware of its own: each
      layer adds Django's exception wrapper, measurable per request.)
    - The proxy's paths (settings.PROXY_PATHS) are async end to end and manage no database
      connection per request: they pass straight through.
    - Other API paths (DRF management APIs) get database-connection scope: Django's request
      signals that used to give it are disconnected (see meshplatform.framework).
    - Everything else (admin pages) also gets settings.BROWSER_MIDDLEWARE. Those classes are
      MiddlewareMixin-based: under ASGI each costs a thread hop, which the proxy must not pay.
    """

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        chain: GetResponse = get_response
        for path in reversed(settings.BROWSER_MIDDLEWARE):
            chain = import_string(path)(chain)
        self.browser_chain = chain
        self.proxy_paths: tuple[str, ...] = tuple(settings.PROXY_PATHS)
        self.api_prefixes: tuple[str, ...] = tuple(settings.API_PATH_PREFIXES)
        self.host_verdicts: dict[tuple[str | None, str | None], bool] = {}
        markcoroutinefunction(self)

    def host_allowed(self, request: HttpRequest) -> bool:
        # Both headers: which one get_host() believes depends on USE_X_FORWARDED_HOST.
        header = (request.META.get("HTTP_X_FORWARDED_HOST"), request.META.get("HTTP_HOST"))
        verdict = self.host_verdicts.get(header)
        if verdict is None:
            try:
                request.get_host()
                verdict = True
            except DisallowedHost:
                verdict = False
            if len(self.host_verdicts) < MAX_REMEMBERED_HOSTS:
                self.host_verdicts[header] = verdict
        return verdict

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path
        if not self.host_allowed(request):
            if path.startswith(self.api_prefixes):
                message = "The Host header is not one this gateway serves (ALLOWED_HOSTS)."
                error = BadHost(message, param="Host")
                return error_response(error, request_id_of(request))
            return HttpResponseBadRequest(b"Bad Request: the Host header is not allowed.")
        if path.startswith(self.proxy_paths):
            return await self.get_response(request)
        handler = self.get_response if path.startswith(self.api_prefixes) else self.browser_chain
        # Same thread-sensitive context as a sync view, so these run on the view's thread.
        await sync_to_async(database_request_start)()
        try:
            return await handler(request)
        finally:
            await sync_to_async(database_request_end)()


class AdminActorMiddleware:
    """Names the admin user as the actor of whatever the request changes (see keys/audit.py).
    Browser middleware only, after AuthenticationMiddleware; the user is read when an entry is written."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        from meshplatform.actors import acting_as

        def name() -> str:
            user = getattr(request, "user", None)
            return f"{user.get_username()}" if user is not None and user.is_authenticated else "anonymous"

        with acting_as("admin", name):
            return await self.get_response(request)

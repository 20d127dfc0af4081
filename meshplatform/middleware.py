"""Async-native middleware: request ids on every response, Django's browser stack on admin pages only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

from meshplatform.request_ids import new_request_id

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


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
        response = await self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class BrowserMiddleware:
    """Runs settings.BROWSER_MIDDLEWARE for every path but the API's.

    Those classes are MiddlewareMixin-based: under ASGI each costs a thread hop per
    request, which the proxy path must not pay. Admin pages keep the full stack, and
    get the database-connection hygiene Django's request signals would otherwise give.
    """

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        chain: GetResponse = get_response
        for path in reversed(settings.BROWSER_MIDDLEWARE):
            chain = import_string(path)(chain)
        self.browser_chain = chain
        self.api_prefixes: tuple[str, ...] = tuple(settings.API_PATH_PREFIXES)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path.startswith(self.api_prefixes):
            return await self.get_response(request)
        await sync_to_async(close_old_connections)()
        try:
            return await self.browser_chain(request)
        finally:
            await sync_to_async(close_old_connections)()

"""The simulator's ASGI app: routing, the request log, and the `/_sim/*` control endpoints."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Protocol

import orjson

from simulator import anthropic_api, azure_api, gemini_api, media_api, openai_api, responses_api
from simulator.asgi import (
    ASGIApp,
    Exchange,
    Receive,
    Scope,
    Send,
    StreamDropped,
    decode_headers,
    read_body,
    send_json,
)
from simulator.faults import Fault, FaultError, ScriptBook, resolve_fault

REQUEST_LOG_SIZE = 200


class ProviderApi(Protocol):
    """What each provider module (`openai_api`, `anthropic_api`, `gemini_api`, `azure_api`) offers."""

    def auth_problem(self, exchange: Exchange) -> tuple[int, str] | None: ...

    def model_of(self, exchange: Exchange, body: Any) -> str | None: ...

    async def handle(self, exchange: Exchange, body: Any, fault: Fault) -> None: ...

    async def send_error(self, exchange: Exchange, status: int, message: str) -> None: ...


def api_for(path: str) -> ProviderApi:
    if path.startswith("/v1beta/"):
        return gemini_api
    if path == "/v1/messages":
        return anthropic_api
    if path == "/v1/responses":
        return responses_api
    if path.startswith(azure_api.PATH_PREFIX):
        return azure_api
    return openai_api


def _is_completion_path(path: str) -> bool:
    return (
        path in {"/v1/chat/completions", "/v1/messages", "/v1/responses"}
        or gemini_api.split_path(path) is not None
        or azure_api.deployment_of(path) is not None
    )


class _HideDroppedStreams(logging.Filter):
    """Uvicorn logs a traceback when the app raises mid-body; for a deliberate drop that is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamDropped))


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedStreams) for f in logger.filters):
        logger.addFilter(_HideDroppedStreams())


class Simulator:
    """One simulator's state: queued fault rules and the last requests received (per process)."""

    def __init__(self) -> None:
        self.book = ScriptBook()
        self.log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        raw_body = await read_body(receive)
        exchange = Exchange(
            scope=scope,
            receive=receive,
            send=send,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=decode_headers(scope["headers"]),
            raw_body=raw_body,
        )
        if path.startswith("/_sim/"):
            await self.control(exchange, scope["method"])
            return
        await self.provider(exchange, scope["method"])

    async def provider(self, exchange: Exchange, method: str) -> None:
        api = api_for(exchange.path)
        try:
            body: Any = orjson.loads(exchange.raw_body) if exchange.raw_body else None
        except orjson.JSONDecodeError:
            self._record(exchange, method, exchange.raw_body.decode("utf-8", "replace"))
            await api.send_error(exchange, 400, "We could not parse the JSON body of your request.")
            return
        self._record(exchange, method, body)
        if method == "GET" and exchange.path == "/v1/models":
            await openai_api.list_models(exchange)
            return
        route = media_api.route_of(exchange.path)
        if route is not None and method == "POST":
            await self.media(route, exchange, body)
            return
        if method != "POST" or not _is_completion_path(exchange.path):
            await api.send_error(exchange, 404, f"Unknown request URL: {method} {exchange.path}.")
            return
        problem = api.auth_problem(exchange)
        if problem is not None:
            await api.send_error(exchange, *problem)
            return
        mock = body.get("mock") if isinstance(body, dict) else None
        try:
            fault = resolve_fault(self.book, api.model_of(exchange, body), mock)
        except FaultError as error:
            await api.send_error(exchange, 400, f"Simulator: {error}")
            return
        await api.handle(exchange, body, fault)

    async def media(self, route: media_api.Route, exchange: Exchange, body: Any) -> None:
        """Embeddings and images (simulator.media_api), authenticated and faulted like completions."""
        problem = media_api.auth_problem(route, exchange)
        if problem is not None:
            await media_api.send_error(route, exchange, *problem)
            return
        mock = body.get("mock") if isinstance(body, dict) else None
        try:
            fault = resolve_fault(self.book, media_api.model_of(route, body), mock)
        except FaultError as error:
            await media_api.send_error(route, exchange, 400, f"Simulator: {error}")
            return
        await media_api.handle(route, exchange, body, fault)

    def _record(self, exchange: Exchange, method: str, body: Any) -> None:
        exchange.log_entry = {
            "method": method,
            "path": exchange.path,
            "query": exchange.query,
            "headers": exchange.headers,
            "body": body,
            "outcome": "pending",
        }
        self.log.append(exchange.log_entry)

    async def control(self, exchange: Exchange, method: str) -> None:
        route = (method, exchange.path)
        if method == "GET" and exchange.path.startswith(media_api.IMAGE_PATH):
            await media_api.serve_image(exchange)
        elif route == ("GET", "/_sim/health"):
            await send_json(exchange.send, 200, {"ok": True})
        elif route == ("GET", "/_sim/requests"):
            await send_json(exchange.send, 200, list(self.log))
        elif route == ("POST", "/_sim/reset"):
            self.book.clear()
            self.log.clear()
            await send_json(exchange.send, 200, {"ok": True})
        elif route == ("GET", "/_sim/script"):
            await send_json(exchange.send, 200, self.book.pending())
        elif route == ("POST", "/_sim/script"):
            try:
                self.book.add(orjson.loads(exchange.raw_body or b"{}"))
            except (orjson.JSONDecodeError, FaultError) as error:
                await send_json(exchange.send, 400, {"ok": False, "error": str(error)})
                return
            await send_json(exchange.send, 200, {"ok": True, "pending": len(self.book.pending())})
        else:
            await send_json(
                exchange.send,
                404,
                {"ok": False, "error": f"no control endpoint {method} {exchange.path}"},
            )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app() -> ASGIApp:
    """A fresh simulator; state lives in the instance, so each app (and each worker) is independent."""
    _install_log_filter()
    return Simulator()

"""The simulator's ASGI app: routing, the request log, and the `/_sim/*` control endpoints."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import orjson

from simulator import openai_api
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
from simulator.faults import FaultError, ScriptBook, resolve_fault

REQUEST_LOG_SIZE = 200


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
        try:
            body: Any = orjson.loads(exchange.raw_body) if exchange.raw_body else None
        except orjson.JSONDecodeError:
            body = exchange.raw_body.decode("utf-8", "replace")
            self._record(exchange, method, body)
            await openai_api.send_error(exchange, 400, "We could not parse the JSON body of your request.")
            return
        self._record(exchange, method, body)
        path = exchange.path
        if path == "/v1/chat/completions" and method == "POST":
            await self.openai_chat(exchange, body)
        elif path == "/v1/models" and method == "GET":
            await openai_api.list_models(exchange)
        else:
            await openai_api.send_error(
                exchange,
                404,
                f"Unknown request URL: {method} {path}.",
                code="unknown_url",
            )

    async def openai_chat(self, exchange: Exchange, body: Any) -> None:
        if not exchange.bearer_token():
            await openai_api.send_error(exchange, 401, "You didn't provide an API key.")
            return
        model = body.get("model") if isinstance(body, dict) else None
        try:
            fault = resolve_fault(
                self.book,
                model if isinstance(model, str) else None,
                body.get("mock") if isinstance(body, dict) else None,
            )
        except FaultError as error:
            await openai_api.send_error(exchange, 400, f"Simulator: {error}", "mock")
            return
        await openai_api.chat_completions(exchange, body, fault)

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
        if route == ("GET", "/_sim/health"):
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

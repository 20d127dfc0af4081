"""Static files (the admin's CSS, JS and images) served by WhiteNoise at the ASGI level.

WhiteNoise 6 has no ASGI middleware, and its Django middleware is synchronous: in MIDDLEWARE it
would cost every request (the /v1 proxy included) a thread hop, and in the browser middleware
chain every static file would still pay Django's whole request cycle. So the ASGI handler asks
`StaticFiles.matches(path)` first (one `str.startswith`, the only cost the proxy path pays) and
hands matching requests to WhiteNoise's file index here. WhiteNoise keeps what it is good at:
the compressed variant the client accepts (`.gz`/`.br` made by collectstatic), ETag and
If-None-Match, Range, and far-future `Cache-Control: immutable` for hashed names.
"""

from __future__ import annotations

import asyncio
from typing import Any

from whitenoise.middleware import WhiteNoiseMiddleware

CHUNK_BYTES = 64 * 1024
# The request headers WhiteNoise reads, in the WSGI spelling it expects.
_WANTED_HEADERS = {
    b"accept-encoding": "HTTP_ACCEPT_ENCODING",
    b"if-none-match": "HTTP_IF_NONE_MATCH",
    b"if-modified-since": "HTTP_IF_MODIFIED_SINCE",
    b"range": "HTTP_RANGE",
}
_NOT_FOUND_BODY = b"Not found.\n"


class StaticFiles:
    """WhiteNoise's index of STATIC_ROOT (and, with DEBUG, the app finders), as an ASGI responder."""

    def __init__(self) -> None:
        self.whitenoise = WhiteNoiseMiddleware(get_response=None)
        self.prefix: str = self.whitenoise.static_prefix

    def matches(self, path: str) -> bool:
        return path.startswith(self.prefix)

    def _lookup(self, path: str, method: str, headers: dict[str, str]) -> tuple[Any, bytes]:
        """WhiteNoise's response (it opens the file) and the file's first chunk, or (None, b"")
        for an unknown path. Most admin assets fit in one chunk: one thread hop serves them."""
        whitenoise = self.whitenoise
        static_file = whitenoise.find_file(path) if whitenoise.autorefresh else whitenoise.files.get(path)
        if static_file is None:
            return None, b""
        response = static_file.get_response(method, headers)
        return response, response.file.read(CHUNK_BYTES) if response.file is not None else b""

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {
            _WANTED_HEADERS[name]: value.decode("latin1")
            for name, value in scope.get("headers", ())
            if name in _WANTED_HEADERS
        }
        # Opening and reading files is blocking I/O: off the event loop (static requests only).
        response, chunk = await asyncio.to_thread(self._lookup, scope["path"], scope["method"], headers)
        if response is None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"11")],
                }
            )
            await send({"type": "http.response.body", "body": _NOT_FOUND_BODY})
            return
        raw_headers = [
            (name.lower().encode("latin1"), value.encode("latin1")) for name, value in response.headers
        ]
        await send({"type": "http.response.start", "status": int(response.status), "headers": raw_headers})
        file = response.file
        if file is None:  # HEAD, 304, 405, 416
            await send({"type": "http.response.body"})
            return
        try:
            while len(chunk) == CHUNK_BYTES:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await asyncio.to_thread(file.read, CHUNK_BYTES)
            await send({"type": "http.response.body", "body": chunk})
        finally:
            file.close()

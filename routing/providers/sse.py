"""Reading an upstream's Server-Sent Events straight off the response's byte stream.

httpx-sse's own decoders do the parsing (spec line endings, multi-line data, comments), fed from
aiohttp's reads; what this skips is `EventSource.aiter_sse`'s stack of per-chunk async generators
over an httpx response (raw → bytes → text → lines → events).
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # pinned in requirements.txt

from routing.http_client import UpstreamResponse


async def sse_events(response: UpstreamResponse) -> AsyncIterator[ServerSentEvent]:
    """Each event as soon as its blank line arrived; a partial event at the end is dropped, as
    the SSE spec says."""
    text = codecs.getincrementaldecoder("utf-8")("replace")
    lines = SSELineDecoder()
    events = SSEDecoder()
    async for data in response.aiter_raw():
        for line in lines.decode(text.decode(data)):
            event = events.decode(line)
            if event is not None:
                yield event
    for line in lines.decode(text.decode(b"", final=True)) + lines.flush():
        event = events.decode(line)
        if event is not None:
            yield event

"""`python -m bench.sse_decode`: CPU per relayed chunk of the upstream SSE parser (no network).

A micro benchmark, not a test: it prints µs of process CPU per chunk for the read shapes an
upstream produces (one event per read, CRLF line ends, events cut across reads), best of five
rounds, so a change to `routing.providers.sse` can be compared before and after on one machine.
"""

from __future__ import annotations

import argparse
import time

import orjson

from routing.providers.sse import SSEDecoder

CHUNK = {
    "id": "chatcmpl-9xYz",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}],
}


def shapes(count: int) -> dict[str, list[bytes]]:
    event = b"data: " + orjson.dumps(CHUNK) + b"\n\n"
    crlf = event.replace(b"\n", b"\r\n")
    joined = event * count
    return {
        "one event per read": [event] * count,
        "CRLF line ends": [crlf] * count,
        "cut every 64 bytes": [joined[i : i + 64] for i in range(0, len(joined), 64)],
    }


def per_chunk_us(reads: list[bytes], events: int) -> float:
    decoder = SSEDecoder()
    feed = decoder.feed
    started = time.process_time()
    seen = 0
    for read in reads:
        seen += len(feed(read))
    elapsed = time.process_time() - started
    assert seen == events, (seen, events)
    return elapsed / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, reads in shapes(args.events).items():
        best = min(per_chunk_us(reads, args.events) for _ in range(args.rounds))
        print(f"{name:>20}: {best:.2f} µs/chunk")


if __name__ == "__main__":
    main()

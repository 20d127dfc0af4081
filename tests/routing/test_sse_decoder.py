"""The upstream SSE parser against the spec's cases, fed whole and cut at every byte."""

from __future__ import annotations

import pytest

from routing.providers.sse import ServerSentEvent, SSEDecoder


def decode(reads: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for read in reads for event in decoder.feed(read)]
    return events + decoder.close()


def every_cut(body: bytes) -> list[list[bytes]]:
    return [[body]] + [[body[:i], body[i:]] for i in range(1, len(body))] + [[bytes([b]) for b in body]]


SPEC_CASES = [
    (b'data: {"a": 1}\n\ndata: [DONE]\n\n', [ServerSentEvent('{"a": 1}'), ServerSentEvent("[DONE]")]),
    (b"data: one\r\n\r\ndata: two\r\n\r\n", [ServerSentEvent("one"), ServerSentEvent("two")]),
    (b"data: one\r\rdata: two\r\r", [ServerSentEvent("one"), ServerSentEvent("two")]),
    (b"data: first\ndata: second\n\n", [ServerSentEvent("first\nsecond")]),
    (b": keep-alive\n\ndata:no-space\n\n", [ServerSentEvent("no-space")]),
    (
        b"event: message_start\nid: 7\nretry: 1500\ndata: {}\n\n",
        [ServerSentEvent("{}", "message_start", "7", 1500)],
    ),
    (b"\xef\xbb\xbfdata: after a BOM\n\n", [ServerSentEvent("after a BOM")]),
    ("data: naïve – 😀\n\n".encode(), [ServerSentEvent("naïve – 😀")]),
    (b"data: whole\n\ndata: cut off without its blank line\n", [ServerSentEvent("whole")]),
]


@pytest.mark.parametrize(("body", "expected"), SPEC_CASES)
def test_events_are_the_same_however_the_reads_cut_the_bytes(
    body: bytes, expected: list[ServerSentEvent]
) -> None:
    for reads in every_cut(body):
        assert decode(reads) == expected, reads


def test_an_event_is_dispatched_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("x")]
    assert decoder.feed(b"data: y\r\n\r\n") == [ServerSentEvent("y")]


def test_the_last_event_id_persists_across_events() -> None:
    assert decode([b"id: 1\ndata: a\n\ndata: b\n\n"]) == [
        ServerSentEvent("a", id="1"),
        ServerSentEvent("b", id="1"),
    ]

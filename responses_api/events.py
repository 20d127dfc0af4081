"""`chat.completion.chunk`s → the Responses API's stream events (pure: no I/O).

The sequence OpenAI sends and the openai SDK's `responses.stream()` accumulates: `response.created`
and `response.in_progress`; per output item `response.output_item.added`, its deltas
(`response.output_text.delta` inside a `response.content_part.added`/`.done` pair,
`response.function_call_arguments.delta`, `response.reasoning_summary_text.delta`), the `.done`
events and `response.output_item.done`; then `response.completed` (or `response.incomplete`, or
`response.failed` when the upstream broke off), each with a rising `sequence_number`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from responses_api.translate import (
    function_call_item,
    message_item,
    new_id,
    response_object,
    response_usage,
    status_of,
)

Event = dict[str, Any]


def sse_encode(event: Event) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclass(slots=True)
class _OpenItem:
    """An output item still receiving deltas."""

    index: int
    item: dict[str, Any]
    text: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ResponseEvents:
    """One streamed response: `start()`, then `feed(chunk)` per chunk, then `finish()`."""

    response_id: str
    created_at: int
    model: str
    echo: dict[str, Any]
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    _sequence: int = 0
    _reasoning: _OpenItem | None = None
    _message: _OpenItem | None = None
    _calls: dict[int, _OpenItem] = field(default_factory=dict)
    _native_final: dict[str, Any] | None = None
    _thinking_blocks: list[dict[str, Any]] = field(default_factory=list)

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def snapshot(self, status: str) -> dict[str, Any]:
        return response_object(
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            echo=self.echo,
            status=status,
            output=[],
            usage=None,
        )

    def start(self) -> list[Event]:
        return [
            self._event("response.created", response=self.snapshot("in_progress")),
            self._event("response.in_progress", response=self.snapshot("in_progress")),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        native = chunk.get("native_event")
        if isinstance(native, dict):
            return self._native(native)
        if isinstance(chunk.get("error"), dict):
            self.error = chunk["error"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n > 1 has no Responses equivalent: the first choice is the answer
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                events += self._reasoning_delta(str(delta["reasoning_content"]))
            if delta.get("thinking_blocks"):
                self._thinking_blocks += list(delta["thinking_blocks"])
            if delta.get("content"):
                events += self._text_delta(str(delta["content"]))
            for call in delta.get("tool_calls") or ():
                events += self._call_delta(call)
            if choice.get("finish_reason") and choice["finish_reason"] != "error":
                self.finish_reason = choice["finish_reason"]
        return events

    def _native(self, event: Event) -> list[Event]:
        """An event of a natively asked upstream: relayed with this stream's sequence numbers; its
        lifecycle events are this stream's own (start, finish), their response kept for the end."""
        kind = str(event["type"])
        if kind in ("response.created", "response.in_progress", "response.queued"):
            return []
        if kind in ("response.completed", "response.incomplete"):
            response = event.get("response")
            self._native_final = response if isinstance(response, dict) else {}
            return []
        index = event.get("output_index")
        item = event.get("item")
        if kind in ("response.output_item.added", "response.output_item.done") and isinstance(item, dict):
            if isinstance(index, int) and 0 <= index < len(self.output):
                self.output[index] = item
            else:
                self.output.append(item)
        fields = {name: value for name, value in event.items() if name not in ("type", "sequence_number")}
        return [self._event(kind, **fields)]

    def _add(self, item: dict[str, Any]) -> tuple[_OpenItem, Event]:
        opened = _OpenItem(index=len(self.output), item=item)
        self.output.append(item)
        return opened, self._event("response.output_item.added", output_index=opened.index, item=dict(item))

    def _reasoning_delta(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._reasoning is None:
            self._reasoning, added = self._add({"id": new_id("rs"), "type": "reasoning", "summary": []})
            part = {"type": "summary_text", "text": ""}
            events += [
                added,
                self._event(
                    "response.reasoning_summary_part.added",
                    **self._at(self._reasoning),
                    summary_index=0,
                    part=part,
                ),
            ]
        self._reasoning.text.append(text)
        events.append(
            self._event(
                "response.reasoning_summary_text.delta",
                **self._at(self._reasoning),
                summary_index=0,
                delta=text,
            )
        )
        return events

    def _text_delta(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._message is None:
            events += self._close_reasoning()
            item = message_item("", item_id=new_id("msg"), status="in_progress")
            item["content"] = []
            self._message, added = self._add(item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events += [
                added,
                self._event(
                    "response.content_part.added", **self._at(self._message), content_index=0, part=part
                ),
            ]
        self._message.text.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                **self._at(self._message),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        position = int(call.get("index", len(self._calls)))
        function = call.get("function") or {}
        opened = self._calls.get(position)
        if opened is None:
            events += self._close_reasoning() + self._close_message()
            item = function_call_item(
                item_id=new_id("fc"),
                call_id=str(call.get("id") or new_id("call")),
                name=str(function.get("name") or ""),
                arguments="",
                status="in_progress",
            )
            opened, added = self._add(item)
            self._calls[position] = opened
            events.append(added)
        if call.get("thought_signature"):
            opened.item["thought_signature"] = call["thought_signature"]
        arguments = function.get("arguments")
        if arguments:
            opened.text.append(str(arguments))
            events.append(
                self._event(
                    "response.function_call_arguments.delta", **self._at(opened), delta=str(arguments)
                )
            )
        return events

    @staticmethod
    def _at(opened: _OpenItem) -> dict[str, Any]:
        return {"item_id": opened.item["id"], "output_index": opened.index}

    def _close_reasoning(self) -> list[Event]:
        opened, self._reasoning = self._reasoning, None
        if opened is None:
            return []
        text = "".join(opened.text)
        part = {"type": "summary_text", "text": text}
        opened.item["summary"] = [part]
        if self._thinking_blocks:  # Anthropic's signed thinking, sent back on the next turn
            opened.item["thinking_blocks"] = self._thinking_blocks
        return [
            self._event(
                "response.reasoning_summary_text.done", **self._at(opened), summary_index=0, text=text
            ),
            self._event(
                "response.reasoning_summary_part.done", **self._at(opened), summary_index=0, part=part
            ),
            self._event("response.output_item.done", output_index=opened.index, item=dict(opened.item)),
        ]

    def _close_message(self) -> list[Event]:
        opened, self._message = self._message, None
        if opened is None:
            return []
        text = "".join(opened.text)
        done = message_item(text, item_id=opened.item["id"])
        opened.item.update(done)
        part = done["content"][0]
        return [
            self._event(
                "response.output_text.done", **self._at(opened), content_index=0, text=text, logprobs=[]
            ),
            self._event("response.content_part.done", **self._at(opened), content_index=0, part=part),
            self._event("response.output_item.done", output_index=opened.index, item=dict(opened.item)),
        ]

    def _close_calls(self) -> list[Event]:
        events: list[Event] = []
        for opened in sorted(self._calls.values(), key=lambda o: o.index):
            arguments = "".join(opened.text)
            opened.item.update(arguments=arguments, status="completed")
            events += [
                self._event(
                    "response.function_call_arguments.done",
                    **self._at(opened),
                    name=opened.item["name"],
                    arguments=arguments,
                ),
                self._event("response.output_item.done", output_index=opened.index, item=dict(opened.item)),
            ]
        self._calls.clear()
        return events

    def finish(self) -> tuple[dict[str, Any], list[Event]]:
        """The final response object and the events that close the stream (`response.completed`,
        `response.incomplete`, or `response.failed` when the relay ended with an error chunk)."""
        events = self._close_reasoning() + self._close_message() + self._close_calls()
        if self._thinking_blocks:  # a signature that came after the reasoning item was closed
            for item in self.output:
                if item.get("type") == "reasoning":
                    item.setdefault("thinking_blocks", self._thinking_blocks)
                    break
        usage = response_usage(self.usage) if self.usage else None
        if self.error is not None:
            error = {
                "code": str(self.error.get("code") or "upstream_error"),
                "message": str(self.error.get("message") or ""),
            }
            final = response_object(
                response_id=self.response_id,
                created_at=self.created_at,
                model=self.model,
                echo=self.echo,
                status="failed",
                output=self.output,
                usage=usage,
                error=error,
            )
            return final, [*events, self._event("response.failed", response=final)]
        status, incomplete = status_of(self.finish_reason)
        if self._native_final is not None:
            status = str(self._native_final.get("status") or "completed")
            details = self._native_final.get("incomplete_details")
            incomplete = details if isinstance(details, dict) else None
            self.output = list(self._native_final.get("output") or self.output)
        final = response_object(
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            echo=self.echo,
            status=status,
            output=self.output,
            usage=usage,
            incomplete_details=incomplete,
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return final, [*events, self._event(kind, response=final)]

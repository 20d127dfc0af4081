"""OpenRouter-style prompt transforms, applied by Mesh for upstreams that do not know them.

`middle-out` (OpenRouter's only transform) keeps a prompt within the model's context window
by dropping messages from the middle of the conversation: the first (usually the system
prompt) and the most recent messages carry the most meaning.
"""

from __future__ import annotations

from typing import Any

import orjson

from usage.estimate import tokens_from_bytes

SUPPORTED_TRANSFORMS = frozenset({"middle-out"})
PER_MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(message: Any) -> int:
    """A cheap estimate from the message's JSON size: no tokenizer on the hot path."""
    return tokens_from_bytes(len(orjson.dumps(message))) + PER_MESSAGE_OVERHEAD_TOKENS


def middle_out(messages: list[Any], *, budget_tokens: int) -> list[Any]:
    """Drop messages from the middle until the estimate fits `budget_tokens` (first and last stay)."""
    sizes = [estimate_tokens(m) for m in messages]
    total = sum(sizes)
    if total <= budget_tokens or len(messages) <= 2:
        return messages
    kept, kept_sizes = list(messages), list(sizes)
    while total > budget_tokens and len(kept) > 2:
        middle = len(kept) // 2
        total -= kept_sizes.pop(middle)
        del kept[middle]
    return _without_orphan_tool_results(kept)


def _without_orphan_tool_results(messages: list[Any]) -> list[Any]:
    """A tool result whose assistant tool call was dropped would be rejected by every provider."""
    call_ids = {
        call.get("id")
        for message in messages
        if isinstance(message, dict)
        for call in message.get("tool_calls") or ()
        if isinstance(call, dict)
    }
    return [
        m
        for m in messages
        if not (isinstance(m, dict) and m.get("role") == "tool" and m.get("tool_call_id") not in call_ids)
    ]


def transforms_apply(body: dict[str, Any], *, context_window: int) -> dict[str, Any]:
    """The body with Mesh-applied transforms (and without the `transforms` field itself); the
    body itself when it has none (callers copy it before they change it)."""
    if "transforms" not in body:
        return body
    transforms = body.get("transforms") or ()
    body = {name: value for name, value in body.items() if name != "transforms"}
    if "middle-out" in transforms and isinstance(body.get("messages"), list):
        reserved = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        body["messages"] = middle_out(body["messages"], budget_tokens=max(context_window - reserved, 1))
    return body

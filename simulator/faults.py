"""Faults a test or benchmark asks for: per-request `mock` body fields and queued `/_sim/script` rules."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any


class FaultError(ValueError):
    """A `mock` field or script rule the simulator cannot honour; a 400, so the test author sees it."""


@dataclass(frozen=True)
class Fault:
    """How to misbehave (or shape the reply) for one request; every field defaults to "behave normally"."""

    status: int | None = None
    retry_after: float | None = None
    error_message: str | None = None
    # The whole error body, verbatim (a provider's documented error shape), instead of the dialect's.
    error_body: str | None = None
    # A whole 2xx answer, verbatim: a JSON body, or a recorded stream (golden transcripts replay these).
    raw_body: str | None = None
    delay_s: float = 0.0
    chunks: int | None = None
    chunk_delay_ms: float = 0.0
    drop_after_chunks: int | None = None
    content: str | None = None
    cached_tokens: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    malformed: bool = False
    # Wire shape of a stream: CRLF line endings, and the bytes re-cut into pieces of this size
    # (each its own write, paced by chunk_delay_ms) so events and characters straddle reads.
    crlf: bool = False
    split_bytes: int | None = None
    # Prompt tokens reported as written to the provider's prompt cache (Anthropic).
    cache_write_tokens: int = 0
    # "prompt": the provider's content filter refuses the prompt; "completion": it cuts the answer.
    content_filter: str | None = None
    # The provider's own error event after this many content events of a stream (Anthropic, Gemini).
    stream_error_after_chunks: int | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Fault:
        if raw is None:
            return NO_FAULT
        if not isinstance(raw, dict):
            raise FaultError("mock must be an object")
        unknown = set(raw) - _FIELD_TYPES.keys()
        if unknown:
            raise FaultError(f"unknown mock keys: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is not None:
                values[name] = _coerce(name, value)
        fault = cls(**values)
        if fault.status is not None and not 100 <= fault.status <= 599:
            raise FaultError("mock.status must be an HTTP status")
        return fault


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Fault)}


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELD_TYPES[name]
    if "bool" in kind:
        if not isinstance(value, bool):
            raise FaultError(f"mock.{name} must be a boolean")
        return value
    if "str" in kind:
        if not isinstance(value, str):
            raise FaultError(f"mock.{name} must be a string")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"mock.{name} must be a number")
    if value < 0:
        raise FaultError(f"mock.{name} must not be negative")
    return int(value) if "int" in kind else float(value)


NO_FAULT = Fault()
# Streams of providers whose requests cannot carry `mock` (Anthropic, Gemini) default to this many
# chunks when set (the benchmark's anthropic/* cell streams as many as its openai/* cell asks for).
STREAM_CHUNKS = int(os.environ.get("MESH_SIM_STREAM_CHUNKS") or 0) or None


def with_stream_default(fault: Fault, *, stream: bool) -> Fault:
    """`fault`, streaming STREAM_CHUNKS chunks when it does not say how many."""
    if stream and fault.chunks is None and STREAM_CHUNKS is not None:
        return dataclasses.replace(fault, chunks=STREAM_CHUNKS)
    return fault


@dataclass
class ScriptRule:
    """A queued fault for requests to `model` (any when None), used `times` times (forever when None)."""

    model: str | None
    times: int | None
    fault_fields: dict[str, Any]


class ScriptBook:
    """The queued rules, first added first matched; one event loop owns it, so no locking."""

    def __init__(self) -> None:
        self._rules: list[ScriptRule] = []

    def add(self, raw: Any) -> ScriptRule:
        if not isinstance(raw, dict):
            raise FaultError("script rule must be an object")
        fault_fields = dict(raw)
        model = fault_fields.pop("model", None)
        times = fault_fields.pop("times", 1)
        if model is not None and not isinstance(model, str):
            raise FaultError("model must be a string or null")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise FaultError("times must be a positive integer or null (forever)")
        Fault.from_json(fault_fields)  # validate now, not when a request trips over it
        rule = ScriptRule(model=model, times=times, fault_fields=fault_fields)
        self._rules.append(rule)
        return rule

    def take(self, model: str | None) -> dict[str, Any] | None:
        if not self._rules:
            return None
        for index, rule in enumerate(self._rules):
            if rule.model is None or rule.model == model:
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        del self._rules[index]
                return rule.fault_fields
        return None

    def clear(self) -> None:
        self._rules.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [{"model": r.model, "times": r.times, **r.fault_fields} for r in self._rules]


def resolve_fault(book: ScriptBook, model: str | None, mock: Any) -> Fault:
    """A queued rule wins over the body's `mock` for the keys it sets: it is the more deliberate ask."""
    rule_fields = book.take(model)
    if rule_fields is None:
        return Fault.from_json(mock)
    if mock is not None and not isinstance(mock, dict):
        raise FaultError("mock must be an object")
    return Fault.from_json({**(mock or {}), **rule_fields})

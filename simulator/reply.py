"""Provider-neutral reply planning: what the fake model says, and how many tokens it pretends that cost."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import cycle, islice
from typing import Any, Literal

import orjson

from simulator.faults import Fault
from simulator.schema_values import schema_example

DEFAULT_CHUNKS = 8
TOKENS_PER_MESSAGE = 3
TOKENS_PER_IMAGE = 85
ARGUMENT_FRAGMENT_CHARS = 8
FILLER_WORDS = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
)
_PIECES = re.compile(r"\s*\S+")

ToolMode = Literal["none", "auto", "required"]
FinishReason = Literal["stop", "length", "tool_calls"]
OutputKind = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True)
class OutputFormat:
    """What shape the answer's text must have (OpenAI's `response_format`)."""

    kind: OutputKind = "text"
    schema: dict[str, Any] | None = None  # json_schema only


TEXT = OutputFormat()


@dataclass(frozen=True)
class Tool:
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Prompt:
    """What every provider's request boils down to, as far as the fake model cares."""

    word_count: int
    message_count: int
    image_count: int
    last_user_text: str
    tool_result: str | None  # set when the conversation ends with a tool's answer
    tools: tuple[Tool, ...] = ()
    tool_mode: ToolMode = "auto"
    forced_tool: str | None = None
    max_tokens: int | None = None
    output: OutputFormat = TEXT


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as OpenAI sends it


@dataclass(frozen=True)
class Reply:
    """`pieces` are streamed one per chunk: words of the text, or fragments of the tool call's arguments."""

    pieces: tuple[str, ...]
    tool_call: ToolCall | None
    finish: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def count_words(text: str) -> int:
    return len(text.split())


def split_pieces(text: str) -> list[str]:
    """Split keeping the whitespace, so the streamed pieces concatenate back to exactly `text`."""
    pieces = _PIECES.findall(text)
    tail = text[sum(map(len, pieces)) :]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces


def plan_reply(prompt: Prompt, fault: Fault, call_id: str) -> Reply:
    tool = None if prompt.tool_result is not None else choose_tool(prompt)
    if tool is not None:
        arguments = orjson.dumps(example_arguments(tool.parameters)).decode()
        pieces = _fragments(arguments)
        return _finish(prompt, fault, pieces, ToolCall(call_id, tool.name, arguments), "tool_calls")
    pieces = _text_pieces(prompt, fault)
    finish: FinishReason = "stop"
    if prompt.max_tokens is not None and len(pieces) > prompt.max_tokens:
        pieces = pieces[: prompt.max_tokens]
        finish = "length"
    return _finish(prompt, fault, pieces, None, finish)


def _text_pieces(prompt: Prompt, fault: Fault) -> list[str]:
    if fault.content is not None:
        return split_pieces(fault.content)
    if prompt.output.kind != "text":
        return _fragments(orjson.dumps(structured_output(prompt)).decode())
    if prompt.tool_result is not None:
        pieces = split_pieces("Simulated reply using the tool result: " + prompt.tool_result)
        return pieces[: fault.chunks] if fault.chunks is not None else pieces
    wanted = DEFAULT_CHUNKS if fault.chunks is None else fault.chunks
    words = ["Simulated", "reply:", *prompt.last_user_text.split()]
    words = list(islice([*words, *islice(cycle(FILLER_WORDS), max(0, wanted - len(words)))], wanted))
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _finish(
    prompt: Prompt,
    fault: Fault,
    pieces: list[str],
    tool_call: ToolCall | None,
    finish: FinishReason,
) -> Reply:
    prompt_tokens = (
        fault.prompt_tokens
        if fault.prompt_tokens is not None
        else prompt.word_count
        + TOKENS_PER_MESSAGE * prompt.message_count
        + TOKENS_PER_IMAGE * prompt.image_count
    )
    completion_tokens = fault.completion_tokens if fault.completion_tokens is not None else len(pieces)
    return Reply(
        pieces=tuple(pieces),
        tool_call=tool_call,
        finish=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=fault.cached_tokens,
    )


def choose_tool(prompt: Prompt) -> Tool | None:
    """Call a tool when forced to, or when the user plainly asks for one (names it, or the weather)."""
    if not prompt.tools or prompt.tool_mode == "none":
        return None
    if prompt.forced_tool is not None:
        return next((t for t in prompt.tools if t.name == prompt.forced_tool), prompt.tools[0])
    text = prompt.last_user_text.lower()
    named = next((t for t in prompt.tools if t.name.lower() in text), None)
    if named is not None:
        return named
    if prompt.tool_mode == "required" or "weather" in text:
        return prompt.tools[0]
    return None


def _fragments(text: str) -> list[str]:
    """JSON text cut as a model streams it: a few characters per chunk."""
    return [text[i : i + ARGUMENT_FRAGMENT_CHARS] for i in range(0, len(text), ARGUMENT_FRAGMENT_CHARS)]


def structured_output(prompt: Prompt) -> Any:
    """The answer for `response_format`: a value of the schema, or any JSON object for json_object."""
    if prompt.output.kind == "json_schema" and prompt.output.schema is not None:
        return schema_example(prompt.output.schema)
    said = " ".join(prompt.last_user_text.split()[:8])
    return {"reply": f"Simulated reply: {said}".strip(), "words": count_words(prompt.last_user_text)}


def example_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments holding every property of the parameters schema (optional ones too, as models
    do), with plausible values, so callers can json.loads and validate them."""
    value = schema_example(schema or {"type": "object"})
    return value if isinstance(value, dict) else {}

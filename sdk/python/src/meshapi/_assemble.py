"""Assembling streamed chunks into the ChatCompletion the same request would have returned."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field

from meshapi.types.chat_responses import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionMessage,
    DeltaToolCall,
    FunctionCall,
    MessageToolCall,
    Usage,
)


@dataclass
class _ToolCallParts:
    id: str = ""
    type: str = "function"
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    thought_signature: str | None = None

    def add(self, delta: DeltaToolCall) -> None:
        self.id = delta.id or self.id
        self.type = delta.type or self.type
        self.thought_signature = delta.thought_signature or self.thought_signature
        if delta.function is not None:
            self.name = delta.function.name or self.name
            if delta.function.arguments:
                self.arguments.append(delta.function.arguments)

    def build(self) -> MessageToolCall:
        return MessageToolCall(
            id=self.id,
            type=self.type,
            function=FunctionCall(name=self.name, arguments="".join(self.arguments)),
            thought_signature=self.thought_signature,
        )


@dataclass
class _ChoiceParts:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None

    def message(self) -> ChatCompletionMessage:
        calls = [self.tool_calls[i].build() for i in sorted(self.tool_calls)]
        return ChatCompletionMessage(
            role=self.role,
            content="".join(self.content) if self.content or not calls else None,
            tool_calls=calls or None,
            refusal="".join(self.refusal) if self.refusal else None,
        )


class ChatCompletionAccumulator:
    """Feed it every chunk (`add`); `completion()` is the final message: text, tool calls, usage."""

    def __init__(self) -> None:
        self._first: ChatCompletionChunk | None = None
        self._choices: dict[int, _ChoiceParts] = {}
        self._usage: Usage | None = None
        self._fingerprint: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        self._first = self._first or chunk
        self._usage = chunk.usage or self._usage
        self._fingerprint = chunk.system_fingerprint or self._fingerprint
        for choice in chunk.choices:
            parts = self._choices.setdefault(choice.index, _ChoiceParts())
            delta = choice.delta
            parts.role = delta.role or parts.role
            if delta.content:
                parts.content.append(delta.content)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            for call in delta.tool_calls or ():
                parts.tool_calls.setdefault(call.index, _ToolCallParts()).add(call)
            parts.finish_reason = choice.finish_reason or parts.finish_reason

    def completion(self) -> ChatCompletion:
        first = self._first or ChatCompletionChunk()
        return ChatCompletion(
            id=first.id,
            object="chat.completion",
            created=first.created,
            model=first.model,
            choices=[
                ChatCompletionChoice(index=i, message=p.message(), finish_reason=p.finish_reason)
                for i, p in sorted(self._choices.items())
            ],
            usage=self._usage or Usage(),
            system_fingerprint=self._fingerprint,
        )


def assemble_chunks(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletion:
    """The final ChatCompletion of a (sync) stream or any iterable of chunks."""
    accumulator = ChatCompletionAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.completion()


async def assemble_chunks_async(chunks: AsyncIterable[ChatCompletionChunk]) -> ChatCompletion:
    accumulator = ChatCompletionAccumulator()
    async for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.completion()

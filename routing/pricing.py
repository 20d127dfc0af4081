"""What a request may cost before it is sent: the worst case a hard cap holds, and the expected
cost a soft cap counts for requests still in flight."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from routing.catalog import CatalogEntry
from routing.resolve import Candidate
from routing.schema import ChatCompletionRequest
from templates_app.expansion import ExpandedTemplate
from usage.estimate import tokens_at_most, tokens_from_bytes
from usage.types import TokenUsage

# Content part types, as each wire format spells them, by what the catalog bounds them with.
PART_KINDS = {
    "image_url": "image", "image": "image", "input_image": "image",
    "input_audio": "audio", "audio_url": "audio", "audio": "audio",
    "video_url": "video", "video": "video",
    "file": "file", "input_file": "file", "document": "file",
}  # fmt: skip


def media_parts(body: dict[str, Any]) -> Iterator[str]:
    """The kind of every media part of the request's messages (text parts are priced by bytes)."""
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind in PART_KINDS:
                yield PART_KINDS[kind]


def _int_or_none(value: object) -> int | None:
    """A template default Mesh prices (validated as an int when the template was saved)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _choices_and_output(
    chat: ChatCompletionRequest, template: ExpandedTemplate | None
) -> tuple[int, int | None]:
    """How many choices, and the output each may produce as asked (read from the typed request,
    else its template's defaults); None when nothing bounds it but the model."""
    defaults = template.params if template is not None else {}
    choices = chat.n or _int_or_none(defaults.get("n")) or 1
    # The upstream gets both fields merged; max_completion_tokens supersedes max_tokens there.
    asked = (
        chat.max_completion_tokens
        or _int_or_none(defaults.get("max_completion_tokens"))
        or chat.max_tokens
        or _int_or_none(defaults.get("max_tokens"))
    )
    return choices, asked


def _prompt_bound(entry: CatalogEntry, text_tokens: int, parts: list[str]) -> int:
    """Text tokens plus each media part at the model's bound for its kind, never past the context
    window (a longer prompt is refused by the provider, unbilled)."""
    return min(text_tokens + sum(entry.part_max_tokens(kind) for kind in parts), entry.context_window)


def worst_case_usd(
    candidates: list[Candidate],
    chat: ChatCompletionRequest,
    template: ExpandedTemplate | None,
    body: dict[str, Any],
) -> Decimal:
    """The most this request can cost at any candidate's prices: the body's bound as prompt tokens,
    each media part at the catalog's bound for its kind (its tokens are not in its bytes: a 60-byte
    `image_url` can cost 1,445 tokens), plus the whole output allowance of every choice."""
    text_tokens = tokens_at_most(len(orjson.dumps(body)))
    parts = list(media_parts(body))
    choices, asked = _choices_and_output(chat, template)

    def cost(entry: CatalogEntry) -> Decimal:
        output = asked or entry.max_output_tokens or entry.context_window
        prompt = _prompt_bound(entry, text_tokens, parts)
        return entry.cost(TokenUsage(prompt_tokens=prompt, completion_tokens=choices * output))

    return max(cost(c.entry) for c in candidates)


def expected_usd(
    candidates: list[Candidate],
    chat: ChatCompletionRequest,
    template: ExpandedTemplate | None,
    body: dict[str, Any],
) -> Decimal:
    """What the request will most likely cost at the first candidate's prices (the soft cap's
    in-flight estimate): its messages' expected tokens, media parts at their bound, and the output
    it asked for (else MESH_SOFT_CAP_EXPECTED_OUTPUT_TOKENS, within the model's limit)."""
    entry = candidates[0].entry
    text_tokens = tokens_from_bytes(len(orjson.dumps(body.get("messages"))))
    prompt = _prompt_bound(entry, text_tokens, list(media_parts(body)))
    choices, asked = _choices_and_output(chat, template)
    output = asked
    if output is None:
        output = settings.MESH_SOFT_CAP_EXPECTED_OUTPUT_TOKENS
        if entry.max_output_tokens:
            output = min(output, entry.max_output_tokens)
    return entry.cost(TokenUsage(prompt_tokens=prompt, completion_tokens=choices * output))

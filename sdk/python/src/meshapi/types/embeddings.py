"""POST /v1/embeddings: the request (OpenAI's fields, plus `session_id`) and the answer."""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from meshapi.types._base import Request, Response

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingParams(Request):
    """What `client.embeddings.create(...)` sends; unknown keyword arguments are forwarded."""

    model: str | None = None
    """An embedding model, e.g. `openai/text-embedding-3-small` (else the key's default, if it is one)."""
    input: EmbeddingInput
    """A text, a list of texts, a token array, or a list of token arrays."""
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None
    session_id: str | None = None
    """Groups usage for reporting (`client.usage.query(session_id=...)`)."""

    def to_body(self, **overrides: Any) -> dict[str, Any]:
        body = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        body.update(overrides)
        return body


class Embedding(Response):
    object: str = "embedding"
    index: int
    embedding: list[float] | str
    """The vector; a base64 string of little-endian float32s when `encoding_format="base64"`."""

    def vector(self) -> list[float]:
        """The vector as floats, whichever encoding was asked."""
        if isinstance(self.embedding, list):
            return self.embedding
        raw = base64.b64decode(self.embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class EmbeddingUsage(Response):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingList(Response):
    object: str = "list"
    data: list[Embedding]
    model: str
    """The catalog id that served."""
    usage: EmbeddingUsage | None = None

"""POST /v1/images/generations: the request (OpenAI's fields, plus `session_id`) and the answer."""

from __future__ import annotations

import base64
from typing import Any, Literal

from meshapi.types._base import Request, Response


class ImageGenerationParams(Request):
    """What `client.images.generate(...)` sends; unknown keyword arguments (`style`, `background`…)
    are forwarded."""

    model: str | None = None
    """An image model, e.g. `openai/dall-e-3` (else the key's default, if it is one)."""
    prompt: str
    n: int | None = None
    size: str | None = None
    """One the model's catalog entry prices, e.g. `1024x1024`, or `auto`."""
    quality: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: str | None = None
    session_id: str | None = None

    def to_body(self, **overrides: Any) -> dict[str, Any]:
        body = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        body.update(overrides)
        return body


class GeneratedImage(Response):
    url: str | None = None
    """The upstream's URL of the image (it expires as the upstream's do)."""
    b64_json: str | None = None
    revised_prompt: str | None = None

    def image_bytes(self) -> bytes:
        """The image itself, from `b64_json` (ask `response_format="b64_json"`)."""
        if self.b64_json is None:
            raise ValueError("this image came as a url: fetch it, or ask response_format='b64_json'")
        return base64.b64decode(self.b64_json)


class ImagesResponse(Response):
    created: int
    data: list[GeneratedImage]

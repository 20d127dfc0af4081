"""The wire schemas of POST /v1/embeddings and POST /v1/images/generations (OpenAI's shapes, plus
Mesh's `session_id`), as pydantic models.

Embedding inputs can be large (2,048 texts, or token arrays of 8K tokens each), so `input` is
checked by one pass over the list as sent and kept as that same list: it is neither copied by
validation nor re-encoded before the upstream body is built (the body is the one copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError

from meshplatform.chat_schema import Identifier, JsonInt, OpenObject, StoredStr, chat_error_details
from meshplatform.errors import BadRequest, ValidationDetail
from meshplatform.json_input import JsonLimits, json_loads_bounded
from routing.schema import ModelId, validation_error

# Mesh's own fields: they never reach an upstream.
MEDIA_MESH_FIELDS = frozenset({"session_id"})
MAX_TOKEN_ID = 2**31 - 1
MAX_IMAGES = 10  # OpenAI's bound for `n`
MAX_IMAGE_PROMPT_CHARS = 32_000  # gpt-image-1's bound (dall-e-3: 4,000, which that model checks itself)


@dataclass(frozen=True, slots=True)
class EmbeddingInput:
    """`input` as sent, in one of its shapes: texts (a string is one text) or token arrays."""

    texts: list[str] | None
    token_arrays: list[list[int]] | None

    @property
    def count(self) -> int:
        return len(self.texts if self.texts is not None else self.token_arrays or ())


class EmbeddingsRequest(OpenObject):
    """OpenAI's embeddings request; unknown fields are forwarded to OpenAI-compatible upstreams."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: ModelId | None = None
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text, a list of texts, a token array, or a list of token arrays "
        "(at most MESH_MAX_EMBEDDING_INPUTS items; no empty text or array)."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: JsonInt | None = Field(default=None, ge=1, le=65_536)
    user: Identifier | None = None
    session_id: Identifier | None = None
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _input: EmbeddingInput = PrivateAttr(default=EmbeddingInput(texts=[], token_arrays=None))

    @property
    def inputs(self) -> EmbeddingInput:
        return self._input

    def upstream_fields(self) -> dict[str, Any]:
        """The request as sent minus Mesh's own fields (the body OpenAI-compatible upstreams get)."""
        return {name: value for name, value in self._raw.items() if name not in MEDIA_MESH_FIELDS}


ImageSize = Annotated[StoredStr, Field(max_length=32, json_schema_extra={"examples": ["1024x1024"]})]


class ImagesRequest(OpenObject):
    """OpenAI's image generation request; unknown fields (`style`, `background`, `output_format`…)
    are forwarded to the upstream."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: ModelId | None = None
    prompt: Annotated[StoredStr, Field(min_length=1, max_length=MAX_IMAGE_PROMPT_CHARS)]
    n: JsonInt = Field(default=1, ge=1, le=MAX_IMAGES)
    size: ImageSize | None = Field(
        default=None, description="One of the model's sizes in the catalog (`auto` where the model has it)."
    )
    quality: Annotated[StoredStr, Field(max_length=32)] | None = Field(
        default=None, description="One of the model's qualities in the catalog, or `auto`."
    )
    response_format: Literal["url", "b64_json"] | None = None
    user: Identifier | None = None
    session_id: Identifier | None = None
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    def upstream_fields(self) -> dict[str, Any]:
        return {name: value for name, value in self._raw.items() if name not in MEDIA_MESH_FIELDS}


def _problem(loc: list[str | int], msg: str, kind: str) -> BadRequest:
    detail: ValidationDetail = {"loc": ["body", *loc], "msg": msg, "type": kind}
    return validation_error([detail])


def _is_token(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKEN_ID  # type() excludes bool


def embedding_input_check(value: Any) -> EmbeddingInput:
    """`input` in one pass, without copying it: a 422 naming the first bad item. Lists are
    homogeneous (texts, token ids, or token arrays), non-empty, within MESH_MAX_EMBEDDING_INPUTS."""
    limit: int = settings.MESH_MAX_EMBEDDING_INPUTS
    if isinstance(value, str):
        if not value:
            raise _problem(["input"], "must not be empty", "too_short")
        return EmbeddingInput(texts=[value], token_arrays=None)
    if not isinstance(value, list):
        msg = "must be a string, a list of strings, a token array or a list of token arrays"
        raise _problem(["input"], msg, "input_type")
    if not value:
        raise _problem(["input"], "must not be empty", "too_short")
    first = value[0]
    if type(first) is int:  # one token array
        if len(value) > settings.MESH_MAX_EMBEDDING_TOKENS:
            raise _problem(["input"], f"at most {settings.MESH_MAX_EMBEDDING_TOKENS} tokens", "too_long")
        for index, token in enumerate(value):
            if not _is_token(token):
                raise _problem(["input", index], "must be a token id (an integer ≥ 0)", "int_type")
        return EmbeddingInput(texts=None, token_arrays=[value])
    if len(value) > limit:
        raise _problem(["input"], f"at most {limit} inputs (MESH_MAX_EMBEDDING_INPUTS)", "too_long")
    if isinstance(first, str):
        for index, text in enumerate(value):
            if type(text) is not str:
                raise _problem(["input", index], "must be a string, like the other inputs", "string_type")
            if not text:
                raise _problem(["input", index], "must not be empty", "too_short")
        return EmbeddingInput(texts=value, token_arrays=None)
    if isinstance(first, list):
        for index, array in enumerate(value):
            _token_array_check(array, index)
        return EmbeddingInput(texts=None, token_arrays=value)
    raise _problem(["input", 0], "must be a string, a token id or a token array", "input_type")


def _token_array_check(array: Any, index: int) -> None:
    if type(array) is not list:
        raise _problem(["input", index], "must be a token array, like the other inputs", "list_type")
    if not array:
        raise _problem(["input", index], "must not be empty", "too_short")
    if len(array) > settings.MESH_MAX_EMBEDDING_TOKENS:
        msg = f"at most {settings.MESH_MAX_EMBEDDING_TOKENS} tokens (MESH_MAX_EMBEDDING_TOKENS)"
        raise _problem(["input", index], msg, "too_long")
    for position, token in enumerate(array):
        if not _is_token(token):
            raise _problem(["input", index, position], "must be a token id (an integer ≥ 0)", "int_type")


def _object(body: bytes) -> dict[str, Any]:
    raw = json_loads_bounded(body, JsonLimits.from_settings(forbid_nul=True))
    if not isinstance(raw, dict):
        raise BadRequest(
            "Request body must be a JSON object.",
            param="body",
            details=[{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}],
        )
    return raw


def parse_embeddings_request(body: bytes) -> EmbeddingsRequest:
    """The validated request from a JSON body (422 naming what is wrong; NUL is refused)."""
    raw = _object(body)
    if "input" not in raw:
        raise _problem(["input"], "Field required", "missing")
    inputs = embedding_input_check(raw["input"])
    # `input` was checked above; validating the rest alone keeps pydantic from copying the batch.
    try:
        request = EmbeddingsRequest.model_validate({**raw, "input": ""})
    except ValidationError as error:
        raise validation_error(chat_error_details(error, raw)) from None
    request.input = raw["input"]
    request._raw, request._input = raw, inputs
    return request


def parse_images_request(body: bytes) -> ImagesRequest:
    raw = _object(body)
    try:
        request = ImagesRequest.model_validate(raw)
    except ValidationError as error:
        raise validation_error(chat_error_details(error, raw)) from None
    request._raw = raw
    return request

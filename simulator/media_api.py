"""Embeddings and image generation as OpenAI, Azure OpenAI and Gemini serve them.

Vectors are deterministic (the same model, text and dimension give the same unit vector), of the
model's dimension or the `dimensions` asked; images are small valid PNGs (a colour derived from
the prompt), as `b64_json` or a `url` this simulator serves (`GET /_sim/images/<name>.png`).
Faults (`mock` in the body, `/_sim/script` rules by model) apply as they do to completions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import struct
import time
import zlib
from array import array
from dataclasses import dataclass
from typing import Any, Literal

from simulator import azure_api, gemini_api, openai_api
from simulator.asgi import Exchange, send_bytes, send_json
from simulator.faults import Fault
from simulator.reply import count_words

Provider = Literal["openai", "azure", "gemini"]
Operation = Literal["embeddings", "images"]
DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072,
    "text-embedding-004": 768,
}
DEFAULT_DIMENSIONS = 1536
MAX_INPUTS = 2048
IMAGE_SIZES = {"256x256", "512x512", "1024x1024", "1024x1792", "1792x1024", "1024x1536", "1536x1024", "auto"}
GEMINI_BATCH_LIMIT = 100
IMAGE_PATH = "/_sim/images/"


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    operation: Operation
    model: str | None  # from the path (Azure's deployment, Gemini's model)
    batch: bool = False  # Gemini's batchEmbedContents


class RequestError(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def route_of(path: str) -> Route | None:
    """The media operation `path` names, or None (a completion or an unknown path)."""
    if path == "/v1/embeddings":
        return Route("openai", "embeddings", None)
    if path == "/v1/images/generations":
        return Route("openai", "images", None)
    if path.startswith(azure_api.PATH_PREFIX):
        deployment, _, rest = path[len(azure_api.PATH_PREFIX) :].partition("/")
        if deployment and rest in ("embeddings", "images/generations"):
            return Route("azure", "embeddings" if rest == "embeddings" else "images", deployment)
    if path.startswith(gemini_api.PATH_PREFIX):
        model, _, method = path[len(gemini_api.PATH_PREFIX) :].rpartition(":")
        if model and method in ("embedContent", "batchEmbedContents"):
            return Route("gemini", "embeddings", model, batch=method == "batchEmbedContents")
    return None


def model_of(route: Route, body: Any) -> str | None:
    if route.model is not None:
        return route.model
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def auth_problem(route: Route, exchange: Exchange) -> tuple[int, str] | None:
    if route.provider == "azure":
        return azure_api.auth_problem(exchange)
    if route.provider == "gemini":
        return gemini_api.auth_problem(exchange)
    return openai_api.auth_problem(exchange)


async def send_error(
    route: Route, exchange: Exchange, status: int, message: str, param: str | None = None
) -> None:
    if route.provider == "openai":
        await openai_api.send_error(exchange, status, message, param)
    elif route.provider == "azure":
        await azure_api.send_error(exchange, status, message)
    else:
        await gemini_api.send_error(exchange, status, message)


async def handle(route: Route, exchange: Exchange, body: Any, fault: Fault) -> None:
    if fault.delay_s > 0:
        await asyncio.sleep(fault.delay_s)
    if fault.status is not None and fault.status >= 400:
        message = fault.error_message or f"Simulated upstream error {fault.status}"
        await send_error(route, exchange, fault.status, message)
        return
    if fault.malformed:
        exchange.log_entry["outcome"] = "malformed"
        await send_bytes(
            exchange.send, 200, b'{"data": "not a list"', [(b"content-type", b"application/json")]
        )
        return
    if fault.raw_body is not None:  # a whole answer, verbatim
        exchange.log_entry["outcome"] = "completed"
        await send_bytes(
            exchange.send, 200, fault.raw_body.encode(), [(b"content-type", b"application/json")]
        )
        return
    try:
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        if route.operation == "images":
            payload = images_payload(exchange, body)
        elif route.provider == "gemini":
            payload = gemini_payload(route, body)
        else:
            payload = embeddings_payload(model_of(route, body) or "", body, fault)
    except RequestError as error:
        await send_error(route, exchange, 400, str(error), error.param)
        return
    exchange.log_entry["outcome"] = "completed"
    await send_json(exchange.send, 200, payload)


def vector(model: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for (`model`, `text`), `dimensions` long."""
    seed = hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=8).digest()
    generator = random.Random(int.from_bytes(seed, "big"))
    values = [generator.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 7) for v in values]


def _dimensions(model: str, asked: Any) -> int:
    default = DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    if asked is None:
        return default
    if type(asked) is not int or not 1 <= asked <= default:
        raise RequestError(f"Invalid 'dimensions': must be an integer from 1 to {default}.", "dimensions")
    if model == "text-embedding-ada-002":
        raise RequestError("This model does not support specifying dimensions.", "dimensions")
    return asked


def _openai_inputs(body: dict[str, Any]) -> list[str]:
    """Each input as the text its vector is derived from (token arrays as their ids)."""
    value = body.get("input")
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and len(value) <= MAX_INPUTS:
        if all(type(token) is int for token in value):
            return [" ".join(map(str, value))]
        if all(isinstance(text, str) and text for text in value):
            return list(value)
        if all(
            isinstance(tokens, list) and tokens and all(type(t) is int for t in tokens) for tokens in value
        ):
            return [" ".join(map(str, tokens)) for tokens in value]
    raise RequestError("'$.input' is invalid. Please check the API reference.", "input")


def _tokens_of(body: dict[str, Any], texts: list[str]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and type(value[0]) is int:
        return len(value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        return sum(len(tokens) for tokens in value)
    return sum(max(1, count_words(text)) for text in texts)


def embeddings_payload(model: str, body: dict[str, Any], fault: Fault) -> dict[str, Any]:
    if not model:
        raise RequestError("you must provide a model parameter", "model")
    texts = _openai_inputs(body)
    dimensions = _dimensions(model, body.get("dimensions"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise RequestError("Invalid 'encoding_format': must be 'float' or 'base64'.", "encoding_format")
    data = []
    for index, text in enumerate(texts):
        values = vector(model, text, dimensions)
        embedding: Any = (
            base64.b64encode(array("f", values).tobytes()).decode() if encoding == "base64" else values
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = fault.prompt_tokens if fault.prompt_tokens is not None else _tokens_of(body, texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _gemini_text(request: Any, where: str) -> str:
    content = request.get("content") if isinstance(request, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise RequestError(f"* {where}content: contents is not specified")
    texts = [part.get("text") for part in parts if isinstance(part, dict)]
    if not texts or not all(isinstance(text, str) for text in texts):
        raise RequestError(f"* {where}content.parts: only text parts are embedded")
    return "".join(text for text in texts if isinstance(text, str))


def _gemini_values(model: str, request: dict[str, Any], text: str) -> dict[str, Any]:
    asked = request.get("outputDimensionality")
    default = DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    if asked is not None and (type(asked) is not int or not 1 <= asked <= default):
        raise RequestError(f"* outputDimensionality: must be from 1 to {default}")
    return {"values": vector(model, text, asked or default)}


def gemini_payload(route: Route, body: dict[str, Any]) -> dict[str, Any]:
    model = route.model or ""
    if not route.batch:
        return {"embedding": _gemini_values(model, body, _gemini_text(body, ""))}
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise RequestError("* requests: at least one request is required")
    if len(requests) > GEMINI_BATCH_LIMIT:
        raise RequestError(f"* BatchEmbedContentsRequest.requests: at most {GEMINI_BATCH_LIMIT} requests")
    embeddings = []
    for index, request in enumerate(requests):
        where = f"requests[{index}]."
        if not isinstance(request, dict) or request.get("model") != f"models/{model}":
            raise RequestError(f"* {where}model: must be models/{model}, the model of the URL")
        embeddings.append(_gemini_values(model, request, _gemini_text(request, where)))
    return {"embeddings": embeddings}


def png(colour: tuple[int, int, int], size: int = 8) -> bytes:
    """A valid `size`×`size` RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(colour) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def image_name(prompt: str, index: int) -> str:
    return hashlib.blake2b(f"{prompt}\x00{index}".encode(), digest_size=6).hexdigest()


def image_bytes(name: str) -> bytes:
    digest = hashlib.blake2b(name.encode(), digest_size=3).digest()
    return png((digest[0], digest[1], digest[2]))


def images_payload(exchange: Exchange, body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model") or "dall-e-2"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestError("Missing required parameter: 'prompt'.", "prompt")
    n = body.get("n", 1)
    if type(n) is not int or not 1 <= n <= 10:
        raise RequestError("Invalid 'n': must be an integer from 1 to 10.", "n")
    if model == "dall-e-3" and n != 1:
        raise RequestError("You must provide n=1 for this model.", "n")
    size = body.get("size", "1024x1024")
    if size not in IMAGE_SIZES:
        raise RequestError(f"Invalid value: '{size}'. Supported values are: {sorted(IMAGE_SIZES)}.", "size")
    response_format = body.get("response_format") or (
        "b64_json" if str(model).startswith("gpt-image") else "url"
    )
    if response_format not in ("url", "b64_json"):
        raise RequestError("Invalid 'response_format': must be 'url' or 'b64_json'.", "response_format")
    host = exchange.headers.get("host", "127.0.0.1")
    data = []
    for index in range(n):
        name = image_name(prompt, index)
        if response_format == "url":
            data.append({"url": f"http://{host}{IMAGE_PATH}{name}.png", "revised_prompt": prompt})
        else:
            data.append({"b64_json": base64.b64encode(image_bytes(name)).decode(), "revised_prompt": prompt})
    payload: dict[str, Any] = {"created": int(time.time()), "data": data}
    if str(model).startswith("gpt-image"):  # it says which quality and size it made (`auto` chosen)
        quality = body.get("quality") or "auto"
        payload["quality"] = "medium" if quality == "auto" else quality
        payload["size"] = "1024x1024" if size == "auto" else size
        words = max(1, count_words(prompt))
        payload["usage"] = {
            "input_tokens": words,
            "output_tokens": 1056 * n,
            "total_tokens": words + 1056 * n,
        }
    return payload


async def serve_image(exchange: Exchange) -> None:
    """`GET /_sim/images/<name>.png`: the image an earlier `url` answer named."""
    name = exchange.path[len(IMAGE_PATH) :].removesuffix(".png")
    if not name or not all(c in "0123456789abcdef" for c in name):
        await send_json(exchange.send, 404, {"ok": False, "error": "no such image"})
        return
    await send_bytes(exchange.send, 200, image_bytes(name), [(b"content-type", b"image/png")])

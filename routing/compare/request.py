"""The wire format of POST /v1/compare: a chat request whose `models` lists the models to compare
(2 to MESH_COMPARE_MAX_MODELS), checked before any model runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.errors import BadRequest, Forbidden, ProviderNotAvailable, ValidationDetail
from meshplatform.json_input import json_loads_bounded
from routing.catalog import Catalog
from routing.providers.registry import provider_is_configured
from routing.resolve import model_allowed, model_resolve
from routing.schema import ChatCompletionRequest, validate_chat_request

MODEL_ID_MAX_CHARS = 200


@dataclass(frozen=True, slots=True)
class CompareRequest:
    """The models to compare, in the order asked, and the chat request each of them runs (the
    body as sent, `models` left out and `model` set to that model)."""

    models: list[str]
    chats: list[ChatCompletionRequest]

    @property
    def stream(self) -> bool:
        return self.chats[0].stream

    @property
    def session_id(self) -> str | None:
        return self.chats[0].session_id


def _invalid(loc: list[str | int], msg: str, kind: str) -> BadRequest:
    detail: ValidationDetail = {"loc": ["body", *loc], "msg": msg, "type": kind}
    param = ".".join(str(part) for part in loc)
    return BadRequest(f"Invalid request: {param}: {msg}", param=param, details=[detail])


def _model_problem(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return "must be a model id string, e.g. 'openai/gpt-4o'", "string_type"
    if not value.strip():
        return "must name a model, e.g. 'openai/gpt-4o'", "string_too_short"
    if len(value) > MODEL_ID_MAX_CHARS:
        return f"must be at most {MODEL_ID_MAX_CHARS} characters", "string_too_long"
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)", "string_nul"
    return None


def compare_models_parse(raw: dict[str, Any]) -> list[str]:
    """`models` as sent, or the 422 naming what is wrong with it."""
    if "models" not in raw:
        raise _invalid(["models"], "the models to compare are required (2 or more)", "missing")
    models = raw["models"]
    if not isinstance(models, list):
        raise _invalid(["models"], "must be a list of model ids", "list_type")
    most = settings.MESH_COMPARE_MAX_MODELS
    if len(models) < 2:
        raise _invalid(["models"], "a comparison needs at least 2 models", "too_short")
    if len(models) > most:
        raise _invalid(["models"], f"at most {most} models (MESH_COMPARE_MAX_MODELS)", "too_long")
    seen: dict[str, int] = {}
    for index, value in enumerate(models):
        problem = _model_problem(value)
        if problem is not None:
            raise _invalid(["models", index], *problem)
        if value in seen:
            raise _invalid(["models", index], f"duplicates models.{seen[value]} ({value!r})", "duplicate")
        seen[value] = index
    return list(models)


def compare_request_parse(body: bytes) -> CompareRequest:
    """The validated comparison from a JSON body (422 naming the field; nothing has run)."""
    raw = json_loads_bounded(body)
    if not isinstance(raw, dict):
        raise BadRequest(
            "Request body must be a JSON object.",
            param="body",
            details=[{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}],
        )
    return compare_request_validate(raw)


def compare_request_validate(raw: dict[str, Any]) -> CompareRequest:
    """The validated comparison from a decoded JSON object (the API's body, the admin's form)."""
    models = compare_models_parse(raw)
    if "model" in raw:
        raise _invalid(["model"], "a comparison names its models in `models`, not `model`", "extra_forbidden")
    if raw.get("async_mode") is True:
        raise _invalid(
            ["async_mode"], "a comparison answers directly; async_mode is not available", "unsupported"
        )
    chat_raw = {name: value for name, value in raw.items() if name != "models"}
    first = validate_chat_request({**chat_raw, "model": models[0]})
    chats = [first]
    for model in models[1:]:
        chat = first.model_copy(update={"model": model})
        chat._raw = {**chat_raw, "model": model}
        chats.append(chat)
    return CompareRequest(models=models, chats=chats)


def compare_models_check(*, catalog: Catalog, key: ResolvedKey, models: list[str]) -> None:
    """Every model exists for this tenant, is allowed to the key, is served by a configured
    provider, and no two names mean one model: else the 4xx (or 503) naming `models.<i>`."""
    served: dict[str, int] = {}
    for index, name in enumerate(models):
        param = f"models.{index}"
        entry = model_resolve(catalog=catalog, name=name, tenant_id=key.tenant_id, param=param)
        if not model_allowed(key, name, entry):
            raise Forbidden(f"This API key may not use the model {name!r}.", param=param)
        if not provider_is_configured(entry.provider):
            raise ProviderNotAvailable(
                f"No configured provider serves {name!r} on this deployment.", param=param
            )
        if entry.model_id in served:
            other = served[entry.model_id]
            raise _invalid(
                ["models", index], f"names the same model as models.{other} ({entry.model_id!r})", "duplicate"
            )
        served[entry.model_id] = index

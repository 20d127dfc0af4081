"""POST /v1/compare: one chat request run on several models, answers side by side."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from meshapi.types._base import Response
from meshapi.types.chat import ChatCompletionParams
from meshapi.types.chat_responses import ChatCompletion, ChatCompletionChunk
from meshapi.types.errors import ErrorBody


class CompareParams(ChatCompletionParams):
    """A chat request plus the models to compare: every field but `models` is the request each
    model runs. Leave `model` unset (the gateway refuses it here)."""

    models: list[str] | None = None
    """The models to compare, 2 to the gateway's maximum (`MESH_COMPARE_MAX_MODELS`, default 4)."""


class CompareUsage(Response):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0


class CompareResult(Response):
    """One model's side: `completion` when it answered, `error` when its run failed."""

    model: str
    request_id: str = ""
    """This model's run (its own usage event)."""
    status: int = 200
    completion: ChatCompletion | None = None
    error: ErrorBody | None = None
    latency_ms: int = 0
    ttft_ms: int | None = None
    usage: CompareUsage | None = None
    cost_usd: Decimal = Decimal(0)

    @property
    def ok(self) -> bool:
        return self.error is None


class Comparison(Response):
    """Every model's answer, in the order of `models`; `comparison_id` is on each run's usage event
    (`client.usage.query(comparison_id=...)` sums them)."""

    object: str = "compare"
    comparison_id: str = ""
    created: int = 0
    session_id: str | None = None
    results: list[CompareResult] = Field(default_factory=list)
    total_cost_usd: Decimal = Decimal(0)

    def result(self, model: str) -> CompareResult:
        """The result of `model` (as named in `models`)."""
        for result in self.results:
            if result.model == model:
                return result
        raise KeyError(model)


class CompareChunk(Response):
    """A streamed comparison's chunk of one model."""

    object: Literal["compare.chunk"] = "compare.chunk"
    model: str
    request_id: str = ""
    chunk: ChatCompletionChunk


class CompareError(Response):
    """A model whose run failed before its first chunk (the others go on)."""

    object: Literal["compare.error"] = "compare.error"
    model: str
    request_id: str = ""
    status: int = 0
    error: ErrorBody


class CompareSummary(Comparison):
    """The stream's last event: every model's latency, time to first token, usage and cost."""

    object: str = "compare.summary"


CompareEvent = CompareChunk | CompareError | CompareSummary


def compare_event(data: dict[str, Any]) -> CompareEvent:
    kind = data.get("object")
    if kind == "compare.chunk":
        return CompareChunk.model_validate(data)
    if kind == "compare.error":
        return CompareError.model_validate(data)
    return CompareSummary.model_validate(data)

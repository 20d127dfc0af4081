"""`client.compare` of the meshapi SDK against the live gateway: create, stream, errors, usage."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import meshapi
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.support.waiting import wait_until
from usage.models import UsageEvent

MINI, FOUR = "openai/gpt-4o-mini", "openai/gpt-4o"


def params(**overrides: object) -> meshapi.CompareParams:
    base: dict[str, object] = {
        "models": [MINI, FOUR],
        "messages": [meshapi.ChatMessage(role="user", content="Which of you is faster?")],
    }
    return meshapi.CompareParams.model_validate({**base, **overrides})


def test_create_returns_every_model_side_by_side(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    simulator.script(model="gpt-4o", times=None, status=400, error_message="prompt is too long")
    comparison = mesh.compare.create(params(session_id="choose"))
    assert isinstance(comparison, meshapi.Comparison) and comparison.comparison_id.startswith("cmp_")
    mini, four = comparison.results
    assert mini.ok and isinstance(mini.completion, meshapi.ChatCompletion)
    assert (
        mini.completion.choices[0].message.content and mini.usage is not None and mini.usage.total_tokens > 0
    )
    assert mini.cost_usd > 0 and comparison.total_cost_usd == mini.cost_usd + four.cost_usd
    assert not four.ok and four.status == 400 and four.error is not None
    assert four.error.provider_error is not None and four.error.provider_error.message == "prompt is too long"
    assert comparison.result(MINI) is mini
    events = wait_until(
        lambda: list(UsageEvent.objects.filter(comparison_id=comparison.comparison_id)) or None,
        timeout=10,
        what="the comparison's events",
    )
    assert {e.request_id for e in events} <= {mini.request_id, four.request_id}
    assert all(e.session_id == "choose" for e in events)


def test_stream_tags_chunks_with_their_model_and_ends_with_the_summary(mesh: meshapi.MeshAPI) -> None:
    texts: dict[str, str] = {MINI: "", FOUR: ""}
    with mesh.compare.stream(params(mock={"chunks": 3})) as stream:
        for event in stream:
            if isinstance(event, meshapi.CompareChunk):
                assert event.chunk.model == event.model
                texts[event.model] += "".join(c.delta.content or "" for c in event.chunk.choices)
        summary = stream.final_summary()
    assert all(len(text.split()) == 3 for text in texts.values())
    assert [r.model for r in summary.results] == [MINI, FOUR]
    assert all(r.usage is not None and r.usage.completion_tokens == 3 for r in summary.results)
    assert summary.total_cost_usd == sum((r.cost_usd for r in summary.results), Decimal(0))


def test_refusals_raise_the_sdk_s_errors(mesh: meshapi.MeshAPI) -> None:
    with pytest.raises(meshapi.ValidationError) as too_few:
        mesh.compare.create(params(models=[MINI]))
    assert too_few.value.param == "models"
    with pytest.raises(meshapi.NotFoundError) as unknown:
        mesh.compare.create(params(models=[MINI, "openai/none-such"]))
    assert unknown.value.param == "models.1"
    with pytest.raises(ValueError, match="async_mode"):
        mesh.compare.create(params(async_mode=True))


def test_usage_query_keeps_one_comparison(mesh: meshapi.MeshAPI) -> None:
    comparison = mesh.compare.create(params())

    def report() -> meshapi.UsageReport | None:
        found = mesh.usage.query(comparison_id=comparison.comparison_id)
        return found if found.totals.requests == 2 else None

    found = wait_until(report, timeout=10, what="the comparison in the usage report")
    assert found.totals.cost_usd == comparison.total_cost_usd


def test_the_async_client_compares_too(mesh_url: str, acme_key: CreatedKey) -> None:
    async def run() -> tuple[meshapi.Comparison, meshapi.CompareSummary]:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=30) as client:
            whole = await client.compare.create(params())
            stream = client.compare.stream(params(mock={"chunks": 2}))
            async with stream:
                summary = await stream.final_summary()
            return whole, summary

    whole, summary = asyncio.run(run())
    assert all(r.ok for r in whole.results) and all(r.ok for r in summary.results)
    assert whole.comparison_id != summary.comparison_id

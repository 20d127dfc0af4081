"""POST /v1/compare over the real HTTP interface: several models side by side, each model's run
billed as its own usage event under the comparison's id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.usage.conftest import catalog_cost, ledger_events, wait_until
from usage.models import UsageEvent

MINI, FOUR = "openai/gpt-4o-mini", "openai/gpt-4o"
JSON = {"Content-Type": "application/json"}


def compare_body(models: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    body = chat_body(**overrides)
    body.pop("model")
    body["models"] = models if models is not None else [MINI, FOUR]
    return body


def sse_events(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def comparison_events(comparison_id: str, count: int) -> list[UsageEvent]:
    def probe() -> list[UsageEvent] | None:
        rows = list(UsageEvent.objects.filter(comparison_id=comparison_id))
        if len(rows) < count or any(row.provisional for row in rows):
            return None
        return rows

    return wait_until(probe, timeout=10, what=f"{count} events of {comparison_id}")


def test_two_models_answer_side_by_side_each_billed_as_its_own_event(acme_http: httpx.Client) -> None:
    response = acme_http.post("/compare", json=compare_body(session_id="pick-a-model"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "compare" and answer["comparison_id"].startswith("cmp_")
    assert answer["session_id"] == "pick-a-model"
    results = answer["results"]
    assert [r["model"] for r in results] == [MINI, FOUR]
    for result in results:
        assert result["status"] == 200 and result["error"] is None
        completion = result["completion"]
        assert completion["object"] == "chat.completion" and completion["model"] == result["model"]
        assert completion["choices"][0]["message"]["content"]
        assert result["usage"]["prompt_tokens"] == completion["usage"]["prompt_tokens"]
        assert result["usage"]["completion_tokens"] == completion["usage"]["completion_tokens"]
        assert result["latency_ms"] >= 0 and result["ttft_ms"] == result["latency_ms"]
    assert len({r["request_id"] for r in results}) == 2

    events = {e.request_id: e for e in comparison_events(answer["comparison_id"], 2)}
    assert set(events) == {r["request_id"] for r in results}
    for result in results:
        event = events[result["request_id"]]
        usage = result["usage"]
        expected = catalog_cost(result["model"], usage["prompt_tokens"], usage["completion_tokens"])
        assert event.cost_usd == expected == Decimal(result["cost_usd"]) and expected > 0
        assert (event.model_served, event.session_id, event.http_status) == (
            result["model"],
            "pick-a-model",
            200,
        )
    assert Decimal(answer["total_cost_usd"]) == sum(e.cost_usd for e in events.values())
    # The compare's own request id is not an event of its own: only the runs are billed.
    assert not UsageEvent.objects.filter(request_id=response.headers["X-Request-Id"]).exists()


def test_one_model_failing_does_not_fail_the_others(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=None, status=400, error_message="prompt is too long")
    response = acme_http.post("/compare", json=compare_body())
    assert response.status_code == 200, response.text
    ok, failed = response.json()["results"]
    assert ok["status"] == 200 and ok["completion"]["choices"]
    assert failed["status"] == 400 and failed["completion"] is None and failed["usage"] is None
    assert failed["error"]["code"] and failed["error"]["provider_error"]["message"] == "prompt is too long"
    assert failed["error"]["type"] == "invalid_request_error" and failed["cost_usd"] == "0"
    events = {e.request_id: e for e in comparison_events(response.json()["comparison_id"], 2)}
    assert events[failed["request_id"]].http_status == 400 and events[failed["request_id"]].cost_usd == 0
    assert events[ok["request_id"]].http_status == 200


def test_streamed_comparison_tags_every_chunk_with_its_model(acme_http: httpx.Client) -> None:
    body = compare_body(stream=True, mock={"chunks": 4})
    response = acme_http.post("/compare", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    events = sse_events(response.text)
    chunks = [e for e in events if e["object"] == "compare.chunk"]
    for model in (MINI, FOUR):
        mine = [e["chunk"] for e in chunks if e["model"] == model]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in mine if c["choices"])
        assert len(text.split()) == 4
        assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in mine)
    summary = events[-1]
    assert summary["object"] == "compare.summary" and [r["model"] for r in summary["results"]] == [MINI, FOUR]
    rows = {e.request_id: e for e in comparison_events(summary["comparison_id"], 2)}
    for result in summary["results"]:
        event = rows[result["request_id"]]
        assert event.streamed and event.http_status == 200 and event.completion_tokens == 4
        assert result["usage"]["completion_tokens"] == 4 and Decimal(result["cost_usd"]) == event.cost_usd
        assert result["ttft_ms"] is not None and result["ttft_ms"] <= result["latency_ms"]
    assert {c["request_id"] for c in chunks} == set(rows)


def test_a_client_leaving_mid_stream_bills_every_model_for_what_it_produced(
    api_url: str, acme_key: CreatedKey
) -> None:
    body = compare_body(stream=True, mock={"chunks": 60, "chunk_delay_ms": 40})
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    seen: dict[str, str] = {}
    with (
        httpx.Client(base_url=api_url, headers=headers, timeout=30) as client,
        client.stream("POST", "/compare", json=body) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: {"):
                event = orjson.loads(line[6:])
                seen[event["model"]] = event["request_id"]
            if len(seen) == 2:
                break
    rows = ledger_events(list(seen.values()), timeout=15)
    for row in rows.values():
        assert row.cancelled and row.http_status == 499 and row.error_code == "client_disconnected"
        assert row.prompt_tokens > 0 and row.cost_usd > 0 and row.completion_tokens < 60
        assert row.comparison_id
    assert len({row.comparison_id for row in rows.values()}) == 1


BAD_MODELS = [
    (None, "models", "missing"),
    ("openai/gpt-4o", "models", "list_type"),
    ([MINI], "models", "too_short"),
    ([MINI, FOUR, "openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano"], "models", "too_long"),
    ([MINI, MINI], "models.1", "duplicate"),
    ([MINI, "gpt-4o-mini"], "models.1", "duplicate"),  # a bare name of the same catalog entry
    ([MINI, 42], "models.1", "string_type"),
    ([MINI, "   "], "models.1", "string_too_short"),
    ([MINI, "openai/gpt\x00-4o"], "models.1", "string_nul"),
    ([MINI, "x" * 201], "models.1", "string_too_long"),
    ([MINI, {"id": FOUR}], "models.1", "string_type"),
    (["openai/gpt-4o-mini", ["nested", ["deeper"]]], "models.1", "string_type"),
    ([MINI] * 100_000, "models", "too_long"),
]


@pytest.mark.parametrize(("models", "param", "kind"), BAD_MODELS)
def test_bad_models_are_a_422_naming_the_field_and_call_no_upstream(
    acme_http: httpx.Client, simulator: SimulatorServer, models: Any, param: str, kind: str
) -> None:
    body = compare_body()
    if models is None:
        body.pop("models")
    else:
        body["models"] = models
    response = acme_http.post(
        "/compare", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["details"][0]["type"]) == ("validation_error", param, kind)
    assert error["details"][0]["loc"] == ["body", *[int(p) if p.isdigit() else p for p in param.split(".")]]
    assert simulator.requests() == []
    event = ledger_events([response.headers["X-Request-Id"]])[response.headers["X-Request-Id"]]
    assert (event.http_status, event.cost_usd, event.comparison_id) == (422, Decimal(0), "")


@pytest.mark.parametrize(
    ("models", "status", "code", "param"),
    [
        ([MINI, "openai/no-such-model"], 404, "model_not_found", "models.1"),
        (["nope/nothing", MINI], 404, "model_not_found", "models.0"),
        ([MINI, "anthropic/claude-sonnet-4-5"], 503, "provider_not_available", "models.1"),  # not configured
    ],
)
def test_unknown_or_unserved_models_are_refused_before_any_model_runs(
    acme_http: httpx.Client, simulator: SimulatorServer, models: list[str], status: int, code: str, param: str
) -> None:
    response = acme_http.post("/compare", json=compare_body(models))
    assert response.status_code == status, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)
    assert simulator.requests() == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": MINI}, "model"),
        ({"async_mode": True}, "async_mode"),
        ({"messages": "hello"}, "messages"),
        ({"stream": "yes"}, "stream"),
        ({"session_id": "a\x00b"}, "session_id"),
        ({"messages": []}, "messages"),
        ({"max_tokens": "100"}, "max_tokens"),
    ],
)
def test_a_bad_chat_part_is_a_422_naming_the_field(
    acme_http: httpx.Client, simulator: SimulatorServer, change: dict[str, Any], param: str
) -> None:
    body = {**compare_body(), **change}
    response = acme_http.post(
        "/compare", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
    assert simulator.requests() == []


def test_hostile_bodies_are_4xx_envelopes(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    cases = [
        (b"[1, 2]", 422),
        (b"not json", 422),
        (b"{" * 5000, 422),
        (b'{"models": ' + b"[" * 500 + b"]" * 500 + b"}", 422),
        (orjson.dumps({"models": [MINI, FOUR], "template": "missing-one"}), 404),
    ]
    for raw, status in cases:
        response = acme_http.post("/compare", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == status, (raw[:40], response.text)
        assert response.json()["error"]["code"] and response.json()["request_id"]
    wrong_type = acme_http.post("/compare", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert acme_http.get("/compare").status_code == 405
    assert simulator.requests() == []


def test_the_maximum_is_the_configured_one(acme_http: httpx.Client) -> None:
    four = [MINI, FOUR, "openai/gpt-4.1", "openai/gpt-4.1-mini"]  # the default maximum, 4
    response = acme_http.post("/compare", json=compare_body(four))
    assert response.status_code == 200, response.text
    assert [r["model"] for r in response.json()["results"]] == four
    assert all(r["status"] == 200 for r in response.json()["results"])


def test_without_a_valid_key_it_is_401(api_url: str, gateway: object) -> None:
    response = httpx.post(f"{api_url}/compare", json=compare_body())
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    bad = httpx.post(f"{api_url}/compare", json=compare_body(), headers={"Authorization": "Bearer rsk_nope"})
    assert bad.status_code == 401


def test_a_compare_of_n_models_counts_n_requests_all_or_none(
    gateway: object, api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    key = api_key_create(tenant=tenant_acme, name="limited", rpm=3)
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        first = client.post("/compare", json=compare_body())
        assert first.status_code == 200
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        refused = client.post("/compare", json=compare_body())  # 2 requests, 1 left: none counted
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "Retry-After" in refused.headers and "2 requests" in refused.json()["error"]["message"]
        assert client.post("/chat/completions", json=chat_body()).status_code == 200  # the 1 left
        assert client.post("/chat/completions", json=chat_body()).status_code == 429
    assert len([r for r in simulator.requests() if "chat/completions" in r["path"]]) == 3
    event = ledger_events([refused.headers["X-Request-Id"]])[refused.headers["X-Request-Id"]]
    assert event.http_status == 429 and event.cost_usd == 0


def test_a_hard_cap_refuses_the_comparison_as_a_whole(
    gateway: object, api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    import redis
    from django.conf import settings

    from keys.spend import holds_names

    # Each run's worst case is about $0.0006 (1000 output tokens at $0.60/M): one fits, two do not.
    key = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=Decimal("0.001"), hard_cap=True)
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        both_mini = compare_body([MINI, "openai/gpt-4.1-nano"], max_tokens=1000)
        refused = client.post("/compare", json=both_mini)
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["code"] == "spend_limit_exceeded"
        assert simulator.requests() == []  # neither model ran
        assert client.post("/chat/completions", json=chat_body(max_tokens=1000)).status_code == 200
        small = client.post("/compare", json=compare_body([MINI, "openai/gpt-4.1-nano"], max_tokens=50))
        assert small.status_code == 200 and all(r["status"] == 200 for r in small.json()["results"])
    refused_runs = UsageEvent.objects.filter(http_status=402, api_key_id=key.api_key.pk)
    assert wait_until(lambda: refused_runs.count() == 2 or None, timeout=10, what="two refused runs")
    assert len({e.comparison_id for e in refused_runs}) == 1
    assert redis.Redis.from_url(settings.REDIS_URL).hlen(holds_names(tenant_acme.pk)[0]) == 0  # all settled


def test_a_streamed_comparison_refused_by_a_hard_cap_is_a_402_status(
    gateway: object, api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    key = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=Decimal("0.001"), hard_cap=True)
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    body = compare_body([MINI, "openai/gpt-4.1-nano"], max_tokens=1000, stream=True)
    response = httpx.post(f"{api_url}/compare", json=body, headers=headers, timeout=30)
    assert response.status_code == 402 and response.json()["error"]["code"] == "spend_limit_exceeded"
    assert simulator.requests() == []


def test_usage_filters_by_comparison_id_and_tenants_see_only_their_own(
    acme_http: httpx.Client, api_url: str, globex_key: CreatedKey
) -> None:
    answer = acme_http.post("/compare", json=compare_body(session_id="s1")).json()
    acme_http.post("/chat/completions", json=chat_body(session_id="s1"))  # not part of it
    comparison_id = answer["comparison_id"]
    events = comparison_events(comparison_id, 2)

    def report() -> dict[str, Any] | None:
        body: dict[str, Any] = acme_http.get(
            "/usage", params={"comparison_id": comparison_id, "group_by": "model"}
        ).json()
        return body if body["totals"]["requests"] == 2 else None

    body = wait_until(report, timeout=10, what="the comparison's usage")
    assert Decimal(body["totals"]["cost_usd"]) == sum(e.cost_usd for e in events)
    assert sorted(g["group"] for g in body["data"]) == sorted([MINI, FOUR])
    headers = {"Authorization": f"Bearer {globex_key.plaintext}"}
    other = httpx.get(f"{api_url}/usage", params={"comparison_id": comparison_id}, headers=headers).json()
    assert other["totals"]["requests"] == 0 and other["data"] == []
    assert acme_http.get("/usage", params={"comparison_id": "a\x00b"}).status_code == 422
    assert acme_http.get("/usage", params={"comparison_id": "x" * 41}).status_code == 422


def test_a_tenant_alias_is_the_tenant_s_own(
    acme_http: httpx.Client,
    api_url: str,
    globex_key: CreatedKey,
    tenant_acme: Tenant,
    simulator: SimulatorServer,
) -> None:
    from routing.catalog import catalog_changed
    from routing.models import CatalogModel, ModelAlias

    ModelAlias.objects.create(
        tenant=tenant_acme, alias="fast", target=CatalogModel.objects.get(model_id=MINI)
    )
    catalog_changed()
    mine = acme_http.post("/compare", json=compare_body(["fast", FOUR]))
    assert mine.status_code == 200, mine.text
    assert mine.json()["results"][0]["completion"]["model"] == MINI
    headers = {"Authorization": f"Bearer {globex_key.plaintext}"}
    theirs = httpx.post(f"{api_url}/compare", json=compare_body(["fast", FOUR]), headers=headers, timeout=30)
    assert theirs.status_code == 404 and theirs.json()["error"]["param"] == "models.0"


def test_the_openai_sdk_posts_a_comparison(acme_openai: Any) -> None:
    answer = acme_openai.post(
        "/compare",
        body=compare_body(messages=[{"role": "user", "content": "Pick one"}]),
        cast_to=httpx.Response,
    ).json()
    assert [r["model"] for r in answer["results"]] == [MINI, FOUR]
    assert all(r["completion"]["object"] == "chat.completion" for r in answer["results"])
    import openai

    with pytest.raises(openai.UnprocessableEntityError) as refused:
        acme_openai.post("/compare", body=compare_body([MINI]), cast_to=httpx.Response)
    assert refused.value.status_code == 422


def test_the_openapi_document_describes_compare(api_url: str, gateway: object) -> None:
    document = httpx.get(f"{api_url}/openapi.json", timeout=120).json()
    operation = document["paths"]["/v1/compare"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CompareRequest"
    )
    content = operation["responses"]["200"]["content"]
    assert content["application/json"]["schema"]["$ref"].endswith("/CompareResponse")
    events = content["text/event-stream"]["schema"]["properties"]["data"]["contentSchema"]["oneOf"]
    assert {e["$ref"].rsplit("/", 1)[1] for e in events} == {
        "CompareChunkEvent", "CompareErrorEvent", "CompareSummaryEvent",
    }  # fmt: skip
    for status in ("401", "402", "404", "422", "429"):
        assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorEnvelope"
        )
    schemas = document["components"]["schemas"]
    request = schemas["CompareRequest"]
    assert "model" not in request["properties"] and "models" in request["required"]
    assert (request["properties"]["models"]["minItems"], request["properties"]["models"]["maxItems"]) == (
        2,
        4,
    )
    assert "messages" in request["properties"] and "session_id" in request["properties"]
    result = schemas["CompareResult"]["properties"]
    assert {
        "model",
        "completion",
        "error",
        "latency_ms",
        "ttft_ms",
        "usage",
        "cost_usd",
        "request_id",
    } <= set(result)
    assert "comparison_id" in schemas["CompareResponse"]["required"]
    usage_parameters = {p["name"] for p in document["paths"]["/v1/usage"]["get"]["parameters"]}
    assert "comparison_id" in usage_parameters


def test_a_model_failing_before_its_first_chunk_is_a_tagged_error_event(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=None, status=400, error_message="prompt is too long")
    response = acme_http.post("/compare", json=compare_body(stream=True, mock={"chunks": 3}))
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    events = sse_events(response.text)
    errors = [e for e in events if e["object"] == "compare.error"]
    assert [(e["model"], e["status"]) for e in errors] == [(FOUR, 400)]
    assert errors[0]["error"]["provider_error"]["message"] == "prompt is too long"
    assert {e["model"] for e in events if e["object"] == "compare.chunk"} == {MINI}
    summary = events[-1]
    ok, failed = summary["results"]
    assert ok["status"] == 200 and ok["usage"]["completion_tokens"] == 3
    assert failed["status"] == 400 and failed["usage"] is None and failed["cost_usd"] == "0"


def test_concurrent_comparisons_are_counted_all_or_none(
    gateway: object, api_url: str, tenant_acme: Tenant
) -> None:
    import asyncio

    key = api_key_create(tenant=tenant_acme, name="limited", rpm=5)
    headers = {"Authorization": f"Bearer {key.plaintext}"}

    async def fire() -> list[int]:
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
            answers = await asyncio.gather(*(client.post("/compare", json=compare_body()) for _ in range(6)))
        return sorted(answer.status_code for answer in answers)

    statuses = asyncio.run(fire())
    assert statuses == [200, 200, 429, 429, 429, 429]  # 2 comparisons of 2 fit in 5; the 5th is left
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        assert client.post("/chat/completions", json=chat_body()).status_code == 200
        assert client.post("/chat/completions", json=chat_body()).status_code == 429


def test_concurrent_comparisons_never_exceed_a_hard_cap_and_each_is_whole(
    gateway: object, api_url: str, tenant_acme: Tenant
) -> None:
    import asyncio

    import redis
    from django.conf import settings

    from keys.spend import holds_names

    cap = Decimal("0.003")  # each run's worst case is about $0.0006: a few comparisons of 2 fit
    key = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=cap, hard_cap=True)
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    body = compare_body([MINI, "openai/gpt-4.1-nano"], max_tokens=1000)

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
            return list(await asyncio.gather(*(client.post("/compare", json=body) for _ in range(8))))

    answers = asyncio.run(fire())
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 402}, statuses
    for answer in answers:
        if answer.status_code == 200:
            assert [r["status"] for r in answer.json()["results"]] == [200, 200]  # never half a comparison
    admitted = statuses.count(200)
    events = comparison_events_of_key(key.api_key.pk, 16)
    assert sum(e.cost_usd for e in events) <= cap
    assert len([e for e in events if e.http_status == 200]) == 2 * admitted
    assert redis.Redis.from_url(settings.REDIS_URL).hlen(holds_names(tenant_acme.pk)[0]) == 0


def comparison_events_of_key(key_id: int, count: int) -> list[UsageEvent]:
    def probe() -> list[UsageEvent] | None:
        rows = list(UsageEvent.objects.filter(api_key_id=key_id).exclude(comparison_id=""))
        return rows if len(rows) >= count and not any(r.provisional for r in rows) else None

    return wait_until(probe, timeout=15, what=f"{count} comparison events")


def test_a_reached_soft_cap_refuses_the_comparison(
    gateway: object, api_url: str, tenant_acme: Tenant
) -> None:
    key = api_key_create(tenant=tenant_acme, name="soft", spend_cap_usd=Decimal("0.000001"))
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        assert client.post("/chat/completions", json=chat_body()).status_code == 200  # spends past the cap
        wait_until(
            lambda: UsageEvent.objects.filter(api_key_id=key.api_key.pk).exists() or None,
            timeout=10,
            what="the first request billed",
        )
        refused = client.post("/compare", json=compare_body())
        assert refused.status_code == 402 and refused.json()["error"]["code"] == "spend_limit_exceeded"

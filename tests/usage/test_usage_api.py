"""GET /v1/usage: the key's tenant's usage, filtered, grouped and totalled from the rollups, paginated,
never another tenant's, documented in the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from keys.services import CreatedKey, api_key_create
from tests.conftest import chat_body
from tests.usage.conftest import event_sums, ledger_events
from usage.models import UsageEvent
from usage.rollups import usage_rollups_refresh
from usage.store import usage_events_store
from usage.types import TokenUsage, UsageEventData

TODAY = dt.datetime.now(dt.UTC).date()


def send(client: httpx.Client, **overrides: Any) -> str:
    response = client.post("/chat/completions", json=chat_body(**overrides))
    return response.headers["X-Request-Id"]


def past_event(key: CreatedKey, days_ago: int, *, session_id: str, cost: str) -> UsageEventData:
    """An event of an earlier day, stored the way the flusher stores them."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return UsageEventData(
        request_id=f"req_past_{key.api_key.pk}_{days_ago}_{session_id}", tenant_id=key.api_key.tenant_id,
        key_id=key.api_key.pk, model_requested="openai/gpt-4o", model_served="openai/gpt-4o",
        started_at=when.timestamp(), session_id=session_id, provider="openai",
        tokens=TokenUsage(prompt_tokens=100, completion_tokens=20), cost_usd=Decimal(cost),
    )  # fmt: skip


@pytest.fixture
def acme_usage(
    acme_http: httpx.Client, acme_key: CreatedKey, globex_key: CreatedKey, api_url: str
) -> CreatedKey:
    """Acme: two keys, two sessions, two models, one error, history on earlier days; globex: one request."""
    second = api_key_create(tenant=acme_key.api_key.tenant, name="acme batch")
    ids = [
        send(acme_http, session_id="checkout"),
        send(acme_http, session_id="checkout", model="openai/gpt-4o"),
        send(acme_http, session_id="search"),
        send(acme_http, session_id="search", mock={"status": 500}),
        send(acme_http),
    ]
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {second.plaintext}"}) as batch:
        ids.append(send(batch, session_id="checkout"))
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}
    ) as globex:
        ids.append(send(globex, session_id="checkout"))
    ledger_events(ids)
    usage_events_store(
        events=[
            past_event(acme_key, 3, session_id="checkout", cost="0.25"),
            past_event(acme_key, 40, session_id="archive", cost="1.5"),
        ]
    )
    usage_rollups_refresh()
    return second


def get_usage(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/usage", params=params)
    assert response.status_code == 200, response.text
    usage: dict[str, Any] = response.json()
    return usage


def as_totals(sums: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": sums["requests"],
        "prompt_tokens": sums["prompt_tokens"],
        "completion_tokens": sums["completion_tokens"],
        "cached_tokens": sums["cached_tokens"],
        "total_tokens": sums["prompt_tokens"] + sums["completion_tokens"],
        "cost_usd": f"{sums['cost_usd']:.9f}",
    }


def without_errors(totals: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in totals.items() if name != "errors"}


def test_totals_and_days_equal_the_tenants_events(acme_http: httpx.Client, acme_usage: CreatedKey) -> None:
    since = TODAY - dt.timedelta(days=10)
    report = get_usage(acme_http, **{"from": since.isoformat(), "to": TODAY.isoformat()})

    tenant_id = acme_usage.api_key.tenant_id
    window = {"tenant_id": tenant_id, "created_at__date__gte": since}
    assert without_errors(report["totals"]) == as_totals(event_sums(**window))
    assert (
        report["totals"]["errors"] == UsageEvent.objects.filter(**window, http_status__gte=400).count() == 1
    )
    assert (report["object"], report["group_by"], report["from"], report["to"]) == (
        "usage.report", "day", since.isoformat(), TODAY.isoformat(),
    )  # fmt: skip
    days = {row["group"]: row["totals"] for row in report["data"]}
    assert list(days) == sorted(days) == [(TODAY - dt.timedelta(days=3)).isoformat(), TODAY.isoformat()]
    assert days[TODAY.isoformat()]["requests"] == 6
    assert days[(TODAY - dt.timedelta(days=3)).isoformat()]["cost_usd"] == "0.250000000"


def test_default_range_is_the_last_30_days(acme_http: httpx.Client, acme_usage: CreatedKey) -> None:
    report = get_usage(acme_http)

    assert report["from"] == (TODAY - dt.timedelta(days=29)).isoformat() and report["to"] == TODAY.isoformat()
    assert report["totals"]["requests"] == 7  # the event of 40 days ago is outside


@pytest.mark.parametrize("group_by", ["session_id", "key", "model"])
def test_groups_sum_to_the_totals(acme_http: httpx.Client, acme_usage: CreatedKey, group_by: str) -> None:
    report = get_usage(acme_http, group_by=group_by)

    rows = report["data"]
    assert report["count"] == len(rows) and not report["has_more"]
    for metric in ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens"):
        assert sum(row["totals"][metric] for row in rows) == report["totals"][metric]
    assert sum(Decimal(row["totals"]["cost_usd"]) for row in rows) == Decimal(report["totals"]["cost_usd"])
    costs = [Decimal(row["totals"]["cost_usd"]) for row in rows]
    assert costs == sorted(costs, reverse=True)


def test_grouping_by_session_key_and_model_names_each_group(
    acme_http: httpx.Client, acme_key: CreatedKey, acme_usage: CreatedKey
) -> None:
    sessions = {
        row["group"]: row["totals"]["requests"] for row in get_usage(acme_http, group_by="session_id")["data"]
    }
    keys = {row["key"]["prefix"]: row for row in get_usage(acme_http, group_by="key")["data"]}
    models = {
        row["group"]: row["totals"]["requests"] for row in get_usage(acme_http, group_by="model")["data"]
    }

    assert sessions == {"checkout": 4, "search": 2, "": 1}
    assert set(keys) == {acme_key.api_key.prefix, acme_usage.api_key.prefix}
    batch = keys[acme_usage.api_key.prefix]
    assert (batch["group"], batch["key"]["id"], batch["key"]["name"], batch["totals"]["requests"]) == (
        str(acme_usage.api_key.pk), acme_usage.api_key.pk, "acme batch", 1,
    )  # fmt: skip
    assert models == {"openai/gpt-4o-mini": 5, "openai/gpt-4o": 2}


def test_filters_by_session_key_model_and_date(
    acme_http: httpx.Client, acme_key: CreatedKey, acme_usage: CreatedKey
) -> None:
    tenant_id = acme_key.api_key.tenant_id
    recent = {"from": (TODAY - dt.timedelta(days=10)).isoformat()}
    by_session = get_usage(acme_http, session_id="checkout", **recent)["totals"]
    by_key_prefix = get_usage(acme_http, key=acme_usage.api_key.prefix)["totals"]
    by_key_id = get_usage(acme_http, key=str(acme_key.api_key.pk), session_id="search")["totals"]
    by_model = get_usage(acme_http, model="openai/gpt-4o", **recent)["totals"]
    three_days_ago = get_usage(
        acme_http, **{"from": str(TODAY - dt.timedelta(days=3)), "to": str(TODAY - dt.timedelta(days=1))}
    )["totals"]

    last_ten_days = {"tenant_id": tenant_id, "created_at__date__gte": TODAY - dt.timedelta(days=10)}
    assert without_errors(by_session) == as_totals(event_sums(**last_ten_days, session_id="checkout"))
    assert by_session["requests"] == 4
    assert without_errors(by_key_prefix) == as_totals(event_sums(api_key_id=acme_usage.api_key.pk))
    assert (by_key_id["requests"], by_key_id["errors"]) == (2, 1)
    assert without_errors(by_model) == as_totals(event_sums(**last_ten_days, model_served="openai/gpt-4o"))
    assert by_model["requests"] == 2
    assert (three_days_ago["requests"], three_days_ago["cost_usd"]) == (1, "0.250000000")


def test_pages_of_groups_follow_next_links(acme_http: httpx.Client, acme_usage: CreatedKey) -> None:
    first = get_usage(acme_http, group_by="session_id", limit=2)
    assert (first["count"], len(first["data"]), first["has_more"]) == (3, 2, True)

    second = acme_http.get(first["next"]).json()

    assert (len(second["data"]), second["has_more"], second["next"]) == (1, False, None)
    assert {r["group"] for r in first["data"] + second["data"]} == {"checkout", "search", ""}
    assert second["totals"] == first["totals"]  # totals cover every group, not one page


def test_a_tenant_sees_only_its_own_usage(
    api_url: str, acme_usage: CreatedKey, globex_key: CreatedKey, acme_http: httpx.Client
) -> None:
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}
    ) as globex:
        report = get_usage(globex, group_by="key")
        foreign_key = globex.get("/usage", params={"key": acme_usage.api_key.prefix})

    assert report["totals"]["requests"] == 1
    assert [row["key"]["prefix"] for row in report["data"]] == [globex_key.api_key.prefix]
    unknown = acme_http.get("/usage", params={"key": "rsk_nonexistent"})
    # Another tenant's key looks exactly like a key that does not exist.
    assert foreign_key.status_code == unknown.status_code == 404
    assert (
        foreign_key.json()["error"]["code"] == "not_found" and foreign_key.json()["error"]["param"] == "key"
    )
    assert foreign_key.json()["error"]["message"].replace(acme_usage.api_key.prefix, "?") == unknown.json()[
        "error"
    ]["message"].replace("rsk_nonexistent", "?")


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "2024-13-01"}, ["body", "from"]),
        ({"from": "2024-02-02", "to": "2024-02-01"}, ["body", "from"]),
        ({"group_by": "tenant"}, ["body", "group_by"]),
        ({"limit": "0"}, ["body", "limit"]),
    ],
    ids=["bad-date", "from-after-to", "tenant-grouping", "zero-limit"],
)
def test_bad_parameters_are_422_naming_the_parameter(
    acme_http: httpx.Client, params: dict[str, str], loc: list[str]
) -> None:
    response = acme_http.get("/usage", params=params)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"][0]["loc"] == loc


def test_without_a_key_it_is_401(api_url: str, gateway: object) -> None:
    response = httpx.get(f"{api_url}/usage")

    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_the_openapi_document_describes_the_usage_endpoint(api_url: str, gateway: object) -> None:
    document = httpx.get(f"{api_url}/openapi.json").json()

    operation = document["paths"]["/v1/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {
        "from", "to", "session_id", "key", "model", "group_by", "limit", "offset",
    }  # fmt: skip
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    report = document["components"]["schemas"][schema]
    assert set(report["properties"]) >= {
        "from",
        "to",
        "group_by",
        "totals",
        "data",
        "count",
        "has_more",
        "next",
    }

"""Top sessions by the threshold algorithm (usage.session_top) equal the full statement's top
exactly (Decimal costs, ties by session id) over months read whole less the days left out, with
unfolded positive and negative deltas, for each of two tenants and for the operator's all-tenant
view; a session whose every month is below the lists' thresholds but whose total leads is found;
the admin page shows the same rows and says "more sessions" instead of counting them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from tests.usage.conftest import DAY_S, history, today, usage_event
from usage import report_page, selectors, session_top
from usage.models import UsageRollupDelta
from usage.rollups import usage_rollups_refresh
from usage.selectors import usage_top_groups, usage_top_groups_scanned
from usage.session_months import month_plan_of_range
from usage.session_top import session_top_applies
from usage.store import usage_events_store
from usage.types import UsageFilter, UsageGroup

REPORT = "/admin/usage/usagereport/"
TABLE_CSV = "/admin/usage/usagereport/table.csv"


def month_start(months_back: int) -> dt.date:
    first = today().replace(day=1)
    for _ in range(months_back):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return first


def days_ago(day: dt.date) -> float:
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    return max(0.0, (time.time() - noon.timestamp()) / DAY_S)


def spend(key: CreatedKey, day: dt.date, session: str, cost: str) -> None:
    usage_events_store(events=[usage_event(key, days_ago=days_ago(day), session=session, cost=Decimal(cost))])


# The range: from the 3rd of two months ago (that month whole less its first two days) to today.
RANGE_FROM_DAY = 3


def range_filter(tenant: Tenant | None) -> UsageFilter:
    return UsageFilter(
        tenant_id=tenant.pk if tenant else None,
        date_from=month_start(2) + dt.timedelta(days=RANGE_FROM_DAY - 1),
        date_to=today(),
    )


@pytest.fixture
def skewed_sessions(acme_key: CreatedKey, globex_key: CreatedKey) -> None:
    """Two months' lists where `spread` is third in each (7 + 7) yet first in total; `early` whose
    month row is large only through the days left out; ties; a shared id in both tenants; many
    small sessions; then unfolded deltas: a new session today, and a rewrite lowering `b1`."""
    older, last = month_start(2), month_start(1)
    for session, cost in (("a1", "10"), ("a2", "9"), ("spread", "7")):
        spend(acme_key, older + dt.timedelta(days=9), session, cost)
    for session, cost in (("b1", "10"), ("b2", "9"), ("spread", "7")):
        spend(acme_key, last + dt.timedelta(days=9), session, cost)
    spend(acme_key, older, "early", "100")  # the 1st: left out of the range
    spend(acme_key, older + dt.timedelta(days=14), "early", "1")
    for session in ("tie-z", "tie-x", "tie-y"):
        spend(acme_key, last + dt.timedelta(days=4), session, "5.000000001")
    spend(globex_key, last + dt.timedelta(days=2), "spread", "50")
    spend(globex_key, last + dt.timedelta(days=3), "globex-secret", "20")
    usage_events_store(events=history(acme_key, [f"small-{n}" for n in range(60)], seed=3, count=150))
    usage_events_store(events=history(globex_key, [f"g-small-{n}" for n in range(40)], seed=4, count=90))
    usage_rollups_refresh()
    spend(acme_key, today(), "late", "11")  # a positive delta, not folded
    # What a stream's rewrite journals when its final cost is below its provisional one.
    UsageRollupDelta.objects.create(
        day=last + dt.timedelta(days=9), tenant_id=acme_key.api_key.tenant_id, api_key=acme_key.api_key,
        session_id="b1", model="openai/gpt-4o-mini", requests=0, cost_usd=Decimal("-6"),
    )  # fmt: skip


def ranked(groups: list[UsageGroup]) -> list[tuple[str, Decimal, int]]:
    return [(g.value, g.totals.cost_usd, g.totals.requests) for g in groups]


@pytest.fixture(autouse=True)
def threshold_algorithm_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """These ranges are small: the full statement would answer them (SMALL_RANGE_ROWS)."""
    monkeypatch.setattr(session_top, "SMALL_RANGE_ROWS", 0)


def without_full_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, a fallback to the full statement fails the test: the threshold algorithm answers."""

    def refused(**_: object) -> list[UsageGroup]:
        raise AssertionError("usage_top_groups fell back to the full statement")

    monkeypatch.setattr(selectors, "usage_top_groups_scanned", refused)


@pytest.fixture
def one_row_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists read a row at a time, so the stop condition decides after every row."""
    monkeypatch.setattr(session_top, "FIRST_BATCH", 1)


def test_a_session_below_every_lists_threshold_but_first_in_total_is_found(
    skewed_sessions: None, one_row_batches: None, tenant_acme: Tenant
) -> None:
    usage_filter = range_filter(tenant_acme)
    assert session_top_applies(usage_filter)

    top = usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=2)

    assert [(g.value, g.totals.cost_usd) for g in top] == [("spread", Decimal("14")), ("late", Decimal("11"))]
    assert ranked(top) == ranked(
        usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=2)
    )


@pytest.mark.parametrize("scope", ["acme", "globex", "all"])
def test_every_top_n_equals_the_full_statements(
    skewed_sessions: None,
    one_row_batches: None,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    scope: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = {"acme": tenant_acme, "globex": tenant_globex, "all": None}[scope]
    usage_filter = range_filter(tenant)
    assert session_top_applies(usage_filter)
    every = usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=10_000)
    without_full_statement(monkeypatch)

    for n in range(1, len(every) + 3):
        top = usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=n)
        assert ranked(top) == ranked(every[:n]), n

    costs = {g.value: g.totals.cost_usd for g in every}
    if scope == "acme":
        assert "globex-secret" not in costs and costs["spread"] == Decimal("14")
        assert (
            costs["b1"] == Decimal("4") and costs["early"] == Decimal("1") and costs["late"] == Decimal("11")
        )
        assert [g.value for g in every if g.value.startswith("tie-")] == ["tie-x", "tie-y", "tie-z"]
    elif scope == "globex":
        assert set(costs) >= {"spread", "globex-secret"} and "a1" not in costs and "late" not in costs
        assert costs["spread"] == Decimal("50")
    else:  # the operator groups by session id across tenants, as the full statement does
        assert costs["spread"] == Decimal("64") and every[0].value == "spread"


def test_a_range_read_as_days_is_read_by_the_threshold_algorithm(
    skewed_sessions: None, tenant_acme: Tenant, one_row_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = month_start(1)
    usage_filter = UsageFilter(
        tenant_id=tenant_acme.pk, date_from=last + dt.timedelta(days=8), date_to=last + dt.timedelta(days=10)
    )
    assert month_plan_of_range(usage_filter, today=today()).reads_days
    expected = usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=3)
    without_full_statement(monkeypatch)

    top = usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=3)

    assert ranked(top) == ranked(expected)
    assert [g.value for g in top] == ["b2", "spread", "b1"]  # b1: 10 folded − 6 unfolded


def test_the_page_grouped_by_session_shows_the_largest_and_says_more(
    skewed_sessions: None, finance_http: httpx.Client, tenant_acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage_filter = range_filter(tenant_acme)
    params = {
        "group_by": "session_id", "tenant": str(tenant_acme.pk),
        "date_from": str(usage_filter.date_from), "date_to": str(usage_filter.date_to),
    }  # fmt: skip
    expected = usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=10_000)

    table = finance_http.get(TABLE_CSV, params=params)
    page = finance_http.get(REPORT, params=params)

    assert table.status_code == 200 and page.status_code == 200
    rows = list(csv.DictReader(io.StringIO(table.text)))
    total = rows.pop()
    assert [(r["session_id"], Decimal(r["cost_usd"]), int(r["requests"])) for r in rows] == ranked(expected)
    assert Decimal(total["cost_usd"]) == sum((g.totals.cost_usd for g in expected), Decimal(0))
    assert 'id="usage-more-groups"' not in page.text  # every session shown: nothing more to say
    monkeypatch.setattr(report_page, "REPORT_GROUPS_SHOWN", 5)  # in this process only: the page below
    built = report_page.report_page_build(
        usage_filter=usage_filter, group_by="session_id", stack_by="model", bucket="day"
    )
    assert [r.label for r in built.main.rows] == [g.value for g in expected[:5]]
    assert built.main.group_count is None and built.main.more


def test_a_tie_at_the_threshold_is_read_on_until_the_lower_session_id_is_seen(
    acme_key: CreatedKey, tenant_acme: Tenant, one_row_batches: None
) -> None:
    """`zz`'s 5 (3 folded + 2 unfolded) ties the last row read (`tie-m`, 5) when the round ends;
    `tie-n`, unread, also totals 5 and outranks `zz` by id: stopping at a bound merely equal to the
    third best would show `zz`."""
    last = month_start(1)
    for n in range(7):  # large month rows through the days left out, small in range: read first
        spend(acme_key, last, f"e{n}", "100")
        spend(acme_key, last + dt.timedelta(days=4), f"e{n}", "0.1")
    for session, cost in (("big", "10"), ("tie-m", "5"), ("tie-n", "5"), ("zz", "3")):
        spend(acme_key, last + dt.timedelta(days=4), session, cost)
    usage_rollups_refresh()
    spend(acme_key, last + dt.timedelta(days=5), "zz", "2")
    month_end = month_start(0) - dt.timedelta(days=1)
    usage_filter = UsageFilter(
        tenant_id=tenant_acme.pk, date_from=last + dt.timedelta(days=2), date_to=month_end
    )
    assert session_top_applies(usage_filter)

    top = usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=3)

    assert [g.value for g in top] == ["big", "tie-m", "tie-n"]
    assert ranked(top) == ranked(
        usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=3)
    )


# Days, keys and models: the lists are (tenant, day, key, model) slices of the daily session grain.
MINI, FULL = "openai/gpt-4o-mini", "openai/gpt-4o"


def spend_on(key: CreatedKey, day: dt.date, session: str, cost: str, model: str = MINI) -> None:
    event = replace(
        usage_event(key, days_ago=days_ago(day), session=session, cost=Decimal(cost)),
        model_requested=model,
        model_served=model,
    )
    usage_events_store(events=[event])


@pytest.fixture
def acme_batch_key(tenant_acme: Tenant) -> CreatedKey:
    return api_key_create(tenant=tenant_acme, name="acme batch")


@pytest.fixture
def sliced_sessions(acme_key: CreatedKey, acme_batch_key: CreatedKey, globex_key: CreatedKey) -> None:
    """Last month's 10th: `spread` is second in three slices (key × model) yet first in total;
    ties across slices on the 9th; a session in last month's 21st and this month's 1st (a plan of
    days and a whole month); many small sessions over both keys and models; globex sharing the id
    `spread`; then unfolded deltas: `late` today, and a rewrite lowering `k1-top`."""
    last, this = month_start(1), month_start(0)
    tenth, ninth, twenty_first = (
        last + dt.timedelta(days=9),
        last + dt.timedelta(days=8),
        last + dt.timedelta(days=20),
    )
    for key, model, leader, cost in ((acme_key, MINI, "k1-top", "10"), (acme_batch_key, MINI, "k2-top", "9"),
                                     (acme_key, FULL, "m2-top", "8")):  # fmt: skip
        spend_on(key, tenth, leader, cost, model)
        spend_on(key, tenth, "spread", "4", model)
    for key, model, session in ((acme_key, MINI, "tie-z"), (acme_batch_key, MINI, "tie-x"),
                                (acme_key, FULL, "tie-y")):  # fmt: skip
        spend_on(key, ninth, session, "3.000000001", model)
    spend_on(acme_key, twenty_first, "late-month", "6")
    spend_on(acme_batch_key, twenty_first, "mixed", "5", FULL)
    spend_on(acme_key, this, "mixed", "5")
    spend_on(acme_batch_key, this, "this-month", "7", FULL)
    spend_on(acme_batch_key, today(), "today-top", "3")
    spend_on(acme_batch_key, today(), "spread", "2")
    rng = random.Random(5)
    for n in range(120):
        day = today() - dt.timedelta(days=rng.randint(0, 40))
        cost = str(Decimal(rng.randint(1, 900_000_000)) / 10**9)
        spend_on(
            rng.choice((acme_key, acme_batch_key)), day, f"small-{n % 50}", cost, rng.choice((MINI, FULL))
        )
    spend_on(globex_key, tenth, "spread", "50")
    spend_on(globex_key, tenth, "globex-secret", "20", FULL)
    spend_on(globex_key, today(), "globex-today", "30")
    usage_rollups_refresh()
    spend_on(acme_key, today(), "late", "11")  # a positive delta, not folded
    UsageRollupDelta.objects.create(
        day=tenth, tenant_id=acme_key.api_key.tenant_id, api_key=acme_key.api_key,
        session_id="k1-top", model=MINI, requests=0, cost_usd=Decimal("-6"),
    )  # fmt: skip


def sliced_filter(case: str, acme: Tenant, globex: Tenant, batch_key: CreatedKey) -> UsageFilter:
    last = month_start(1)
    days = (last + dt.timedelta(days=8), last + dt.timedelta(days=10))  # the 9th to the 11th
    mixed = (last + dt.timedelta(days=19), today())  # last month as days, this month whole
    default = (last + dt.timedelta(days=2), today())
    seven, one = (today() - dt.timedelta(days=6), today()), (today(), today())
    cases: dict[str, tuple[Tenant | None, tuple[dt.date, dt.date], dict[str, Any]]] = {
        "days": (acme, days, {}), "mixed": (acme, mixed, {}), "seven days": (acme, seven, {}),
        "today": (acme, one, {}), "key": (acme, default, {"key_id": batch_key.api_key.pk}),
        "model": (acme, default, {"model": FULL}),
        "key and model": (acme, days, {"key_id": batch_key.api_key.pk, "model": MINI}),
        "globex days": (globex, days, {}), "globex model": (globex, default, {"model": MINI}),
        "operator days": (None, days, {}), "operator model": (None, default, {"model": MINI}),
        "session": (acme, default, {"session_id": "spread"}),
    }  # fmt: skip
    tenant, (date_from, date_to), extra = cases[case]
    return UsageFilter(tenant_id=tenant.pk if tenant else None, date_from=date_from, date_to=date_to, **extra)


SLICED_CASES = ["days", "mixed", "seven days", "today", "key", "model", "key and model", "globex days",
                "globex model", "operator days", "operator model", "session"]  # fmt: skip


@pytest.mark.parametrize("case", SLICED_CASES)
def test_days_keys_and_models_top_n_equals_the_full_statements(
    sliced_sessions: None,
    one_row_batches: None,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    acme_batch_key: CreatedKey,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    usage_filter = sliced_filter(case, tenant_acme, tenant_globex, acme_batch_key)
    every = usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=10_000)
    assert every, case
    without_full_statement(monkeypatch)

    for n in [*range(1, min(len(every), 12) + 1), len(every) + 2]:
        top = usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=n)
        assert ranked(top) == ranked(every[:n]), (case, n)

    costs = {g.value: g.totals.cost_usd for g in every}
    if case == "days":
        assert (
            every[0].value == "spread"
            and costs["spread"] == Decimal("12")
            and costs["k1-top"] == Decimal("4")
        )
        assert [g.value for g in every if g.value.startswith("tie-")] == ["tie-x", "tie-y", "tie-z"]
    if case == "mixed":
        assert costs["mixed"] == Decimal("10") and costs["late"] == Decimal("11") and "spread" in costs
    if case == "key":  # the batch key's rows only
        assert costs["spread"] == Decimal("6") and "k1-top" not in costs and "late" not in costs
    if case == "model":
        assert set(costs) >= {"m2-top", "this-month"} and "k1-top" not in costs
    if case.startswith("globex"):  # a tenant's filter never shows another tenant's sessions
        assert not set(costs) & {"k1-top", "k2-top", "m2-top", "late", "mixed", "today-top"}
    elif case != "operator days" and case != "operator model":
        assert "globex-secret" not in costs and "globex-today" not in costs
    if case == "operator days":  # the same id across tenants, summed as the full statement does
        assert costs["spread"] == Decimal("62") and "globex-secret" in costs
    if case == "session":
        assert list(costs) == ["spread"] and costs["spread"] == Decimal("14")


@pytest.mark.parametrize(
    ("bound", "value", "full_statements"),
    [
        ("MAX_LISTS", 2, 1),  # too many lists
        ("MAX_ROWS_READ", 2, 1),  # too many rows read
        ("SMALL_RANGE_ROWS", 10**6, 1),  # a range of few rows: the full statement is faster
        ("SMALL_RANGE_ROWS", 1, 0),  # more rows than that: TA
    ],
)
def test_the_full_statement_answers_past_a_bound_and_for_a_small_range(
    sliced_sessions: None,
    one_row_batches: None,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    acme_batch_key: CreatedKey,
    monkeypatch: pytest.MonkeyPatch,
    bound: str,
    value: int,
    full_statements: int,
) -> None:
    """The same rows whichever answers."""
    usage_filter = sliced_filter("model", tenant_acme, tenant_globex, acme_batch_key)
    expected = usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=5)
    monkeypatch.setattr(session_top, bound, value)
    calls: list[int] = []
    scanned = selectors.usage_top_groups_scanned

    def counted(**kwargs: object) -> list[UsageGroup]:
        calls.append(1)
        return scanned(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(selectors, "usage_top_groups_scanned", counted)

    top = usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=5)

    assert ranked(top) == ranked(expected) and len(calls) == full_statements


def test_the_page_of_a_days_range_with_a_model_filter_shows_the_full_statements_sessions(
    sliced_sessions: None,
    finance_http: httpx.Client,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    acme_batch_key: CreatedKey,
) -> None:
    for tenant, model in ((tenant_acme, FULL), (tenant_globex, MINI)):
        days = sliced_filter("days", tenant_acme, tenant_globex, acme_batch_key)
        usage_filter = replace(days, tenant_id=tenant.pk, model=model)
        params = {
            "group_by": "session_id", "tenant": str(tenant.pk), "model": model,
            "date_from": str(usage_filter.date_from), "date_to": str(usage_filter.date_to),
        }  # fmt: skip
        expected = usage_top_groups_scanned(usage_filter=usage_filter, group_by="session_id", limit=10_000)

        table = finance_http.get(TABLE_CSV, params=params)

        assert table.status_code == 200
        rows = list(csv.DictReader(io.StringIO(table.text)))[:-1]
        assert [(r["session_id"], Decimal(r["cost_usd"]), int(r["requests"])) for r in rows] == ranked(
            expected
        )
        shown = {r["session_id"]: Decimal(r["cost_usd"]) for r in rows}
        if tenant == tenant_acme:
            assert (
                shown["m2-top"] == Decimal("8")
                and shown["spread"] == Decimal("4")
                and "globex-secret" not in shown
            )
        else:  # globex's own `spread` only: acme's rows of the same id are not summed in
            assert shown == {"spread": Decimal("50")}


@pytest.mark.parametrize("case", ["days", "mixed", "key", "model", "session"])
def test_the_apis_first_page_by_session_equals_the_full_statements(
    sliced_sessions: None,
    acme_http: httpx.Client,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    acme_batch_key: CreatedKey,
    case: str,
) -> None:
    """`/v1/usage?group_by=session_id`: its first page by the threshold algorithm, `count` and
    `totals` (API contract) computed apart, all equal to the full statement's (usage_report)."""
    usage_filter = sliced_filter(case, tenant_acme, tenant_globex, acme_batch_key)
    query = {"group_by": "session_id", "from": str(usage_filter.date_from), "to": str(usage_filter.date_to)}
    if usage_filter.key_id is not None:
        query["key"] = acme_batch_key.api_key.prefix
    for name in ("model", "session_id"):
        if getattr(usage_filter, name) is not None:
            query[name] = getattr(usage_filter, name)
    every = selectors.usage_report(usage_filter=usage_filter, group_by="session_id")
    assert every.group_count > 0

    for limit in (1, 3, every.group_count + 1):
        response = acme_http.get("/usage", params={**query, "limit": limit})

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == every.group_count and body["has_more"] == (limit < every.group_count)
        assert Decimal(body["totals"]["cost_usd"]) == every.totals.cost_usd
        counts = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens")
        assert [body["totals"][name] for name in counts] == [getattr(every.totals, name) for name in counts]
        shown = [
            (row["group"], Decimal(row["totals"]["cost_usd"]), row["totals"]["requests"])
            for row in body["data"]
        ]
        assert shown == ranked(every.groups[:limit]), limit
        assert "globex-secret" not in [row["group"] for row in body["data"]]
    second = acme_http.get("/usage", params={**query, "limit": 1, "offset": 1}).json()
    assert [row["group"] for row in second["data"]] == [g.value for g in every.groups[1:2]]

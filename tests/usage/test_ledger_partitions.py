"""The ledger partitioned by month (PostgreSQL): events land in their month's partition, a request
stays one row however often its entries arrive, beat creates the coming months' partitions, and
retention drops a month whole (no DELETE) while its rollups, and /v1/usage over them, stay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, cast

import httpx
import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from keys.models import AuditEntry, Tenant
from keys.services import CreatedKey, api_key_create
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.celery_worker import CeleryWorker
from tests.support.waiting import wait_until
from tests.usage.conftest import rollups_by_slice
from usage.codec import event_encode
from usage.flushing import RETIRED_REASON
from usage.models import (
    LedgerPartitionDrop,
    UsageDailyRollup,
    UsageEvent,
    UsageRollupDelta,
    UsageRollupStale,
)
from usage.partitions import (
    DEFAULT_PARTITION,
    PARENT,
    ledger_partitions,
    ledger_partitions_drop_expired,
    ledger_partitions_ensure,
    month_add,
    month_start,
    partition_name,
)
from usage.recording import DEAD_LETTERS, PAYLOAD_FIELD, STREAM
from usage.rollups import usage_rollups_refresh
from usage.spend_rebuild import ledger_totals
from usage.store import usage_events_store
from usage.tasks import ledger_partitions_maintain
from usage.types import TokenUsage, UsageEventData

NOW = dt.datetime.now(dt.UTC)
CURRENT = month_start(NOW)
# Three past months, kept by a retention of 3 months except the oldest (it ended 3 months ago).
OLDEST, MIDDLE, LATEST = (month_add(CURRENT, n) for n in (-4, -3, -2))


def event(
    key: CreatedKey,
    request_id: str,
    at: dt.datetime,
    *,
    cost: str = "0.1",
    provisional: bool = False,
    latency_ms: int = 100,
    completion: int = 20,
) -> UsageEventData:
    return UsageEventData(
        request_id=request_id, tenant_id=key.api_key.tenant_id, key_id=key.api_key.pk,
        model_requested="openai/gpt-4o", model_served="openai/gpt-4o", provider="openai",
        started_at=at.timestamp(), session_id="s1",
        tokens=TokenUsage(prompt_tokens=100, completion_tokens=completion),
        cost_usd=Decimal(cost), latency_ms=latency_ms, streamed=True, provisional=provisional,
        error_code="stream_unfinished" if provisional else None,
    )  # fmt: skip


def partition_of(request_id: str) -> list[str]:
    """The partition of each row of `request_id` (its tableoid)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {PARENT} WHERE request_id = %s", [request_id])
        return [name for (name,) in cursor.fetchall()]


def partition_names() -> set[str]:
    """The ledger's partitions, as PostgreSQL lists them (pg_inherits)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [PARENT]
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.fixture
def past_partitions(tenant_acme: Tenant) -> list[dt.datetime]:
    """The partitions of the three past months (created as beat would have, then)."""
    ledger_partitions_ensure(now=OLDEST, ahead=2)
    return [OLDEST, MIDDLE, LATEST]


@pytest.fixture
def no_delete_on_the_ledger(tenant_acme: Tenant) -> Iterator[None]:
    """A trigger refusing any DELETE of a ledger row (cloned to every partition) while the test runs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION test_refuse_ledger_delete() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'DELETE on the usage ledger'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER test_no_delete BEFORE DELETE ON {PARENT} "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_ledger_delete()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS test_no_delete ON {PARENT}")
        cursor.execute("DROP FUNCTION IF EXISTS test_refuse_ledger_delete()")


def test_events_of_three_months_land_in_their_months_partitions(
    acme_key: CreatedKey, past_partitions: list[dt.datetime]
) -> None:
    ids = {month: f"req_month_{month:%Y%m}" for month in past_partitions}
    usage_events_store(events=[event(acme_key, ids[m], m + dt.timedelta(days=9)) for m in past_partitions])

    assert {partition_name(m) for m in past_partitions} <= partition_names()
    for month, request_id in ids.items():
        assert partition_of(request_id) == [partition_name(month)]
    # The last instant of a month and the first of the next go to different partitions.
    edge = LATEST - dt.timedelta(milliseconds=1)
    usage_events_store(
        events=[event(acme_key, "req_edge_before", edge), event(acme_key, "req_edge_at", LATEST)]
    )
    assert partition_of("req_edge_before") == [partition_name(MIDDLE)]
    assert partition_of("req_edge_at") == [partition_name(LATEST)]


def test_an_event_of_a_month_without_partition_is_kept_and_later_moved_to_its_own(
    acme_key: CreatedKey,
) -> None:
    far = dt.datetime(2001, 3, 14, 15, 9, tzinfo=dt.UTC)
    assert partition_name(month_start(far)) not in partition_names()
    usage_events_store(events=[event(acme_key, "req_far", far, cost="0.7")])
    assert partition_of("req_far") == [DEFAULT_PARTITION]
    row_id = UsageEvent.objects.get(request_id="req_far").pk

    created = ledger_partitions_ensure()

    assert partition_name(month_start(far)) in created
    assert partition_of("req_far") == [partition_name(month_start(far))]
    moved = UsageEvent.objects.get(request_id="req_far")
    assert (moved.pk, moved.cost_usd, moved.created_at) == (row_id, Decimal("0.7"), far)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
        assert cursor.fetchone() == (0,)
    assert ledger_partitions_ensure() == []  # nothing left to create
    # A partition attached with moved rows takes new rows like any other (ids from the parent).
    usage_events_store(events=[event(acme_key, "req_far_2", far + dt.timedelta(days=1))])
    assert UsageEvent.objects.get(request_id="req_far_2").pk > row_id


def test_duplicate_deliveries_of_a_stream_stay_one_row_provisional_then_final(
    acme_key: CreatedKey, past_partitions: list[dt.datetime]
) -> None:
    """A stream that began in the last second of a month and ended in the next: its provisional
    entries and its final one carry the same start, so they meet on one row of the first month."""
    start = LATEST - dt.timedelta(milliseconds=300)
    request_id = "req_dup_stream"
    opening = event(acme_key, request_id, start, provisional=True, latency_ms=5, completion=0)
    progress = event(acme_key, request_id, start, provisional=True, latency_ms=5000, completion=40)
    final = event(acme_key, request_id, start, cost="0.3", latency_ms=9000, completion=90)

    usage_events_store(events=[opening, opening])
    usage_events_store(events=[opening])  # a reclaimed batch
    usage_events_store(events=[progress, opening])
    usage_events_store(events=[final, final])
    usage_events_store(events=[progress])  # an older progress update arriving late
    usage_events_store(events=[final, opening])

    rows = list(UsageEvent.objects.filter(request_id=request_id))
    assert len(rows) == 1
    assert (rows[0].provisional, rows[0].completion_tokens, rows[0].cost_usd) == (False, 90, Decimal("0.3"))
    assert partition_of(request_id) == [partition_name(MIDDLE)]


def test_a_request_whose_entries_arrive_through_the_gateway_many_times_is_one_row(
    acme_http: httpx.Client, tenant_acme: Tenant
) -> None:
    """A real stream through the gateway: its provisional and final entries, flushed, are one row in
    the current month's partition; storing them all again changes nothing."""
    with acme_http.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        body = "".join(response.iter_text())
    assert "[DONE]" in body
    row = wait_until(
        lambda: UsageEvent.objects.filter(request_id=request_id, provisional=False).first(),
        what="the stream's final entry",
    )
    assert partition_of(request_id) == [partition_name(CURRENT)]
    replay = UsageEventData(
        request_id=request_id, tenant_id=row.tenant_id, key_id=row.api_key_id,
        model_requested=row.model_requested, started_at=row.created_at.timestamp(), streamed=True,
        provisional=True, latency_ms=1, cost_usd=Decimal("0.000001"),
    )  # fmt: skip
    usage_events_store(events=[replay, replay])
    again = UsageEvent.objects.get(request_id=request_id)
    assert (again.pk, again.provisional, again.cost_usd) == (row.pk, False, row.cost_usd)


def test_the_beat_task_creates_next_months_partition(simulator: SimulatorServer, tenant_acme: Tenant) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["usage-ledger-partitions"]
    assert schedule["task"] == "usage.ledger_partitions"
    following = partition_name(month_add(CURRENT, 1))
    with connection.cursor() as cursor:  # as if the ledger had been set up a month ago
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {following}")
        cursor.execute(f"DROP TABLE {following}")
    assert following not in partition_names()

    worker = CeleryWorker(env=gateway_env(simulator)).start()
    try:
        ledger_partitions_maintain.delay()
        wait_until(lambda: following in partition_names(), timeout=30, what=f"partition {following}")
    finally:
        worker.kill()
    ahead = [month_add(CURRENT, n) for n in range(settings.MESH_LEDGER_PARTITIONS_AHEAD + 1)]
    assert {partition_name(month) for month in ahead} <= partition_names()


def usage_totals(client: httpx.Client) -> dict[str, Any]:
    span = {"from": OLDEST.date().isoformat(), "to": (CURRENT - dt.timedelta(days=1)).date().isoformat()}
    response = client.get("/usage", params={**span, "group_by": "day"})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_retention_drops_the_oldest_month_whole_and_keeps_its_rollups(
    acme_http: httpx.Client,
    acme_key: CreatedKey,
    past_partitions: list[dt.datetime],
    no_delete_on_the_ledger: None,
) -> None:
    events = [
        event(acme_key, f"req_ret_{month:%Y%m}_{n}", month + dt.timedelta(days=n, hours=3), cost=f"0.{n}1")
        for month in past_partitions
        for n in (1, 2)
    ]
    usage_events_store(events=events)
    usage_rollups_refresh()
    late = event(acme_key, "req_ret_late", OLDEST + dt.timedelta(days=5), cost="0.05")
    usage_events_store(events=[late])  # left stale: the drop must roll it up before the events go
    assert UsageRollupStale.objects.filter(day=(OLDEST + dt.timedelta(days=5)).date()).exists()
    # Another whose mark is lost (removed by hand): its delta alone says its day lags its events.
    unmarked = event(acme_key, "req_ret_unmarked", OLDEST + dt.timedelta(days=6), cost="0.07")
    usage_events_store(events=[unmarked])
    UsageRollupStale.objects.filter(day=(OLDEST + dt.timedelta(days=6)).date()).delete()
    assert UsageRollupDelta.objects.filter(day=(OLDEST + dt.timedelta(days=6)).date()).exists()
    before = usage_totals(acme_http)
    assert before["totals"]["requests"] == 8
    rollups_before = rollups_by_slice()

    dropped = ledger_partitions_drop_expired(months=3)

    assert partition_name(OLDEST) in {d.name for d in dropped}
    assert all(d.end <= month_add(CURRENT, -3) for d in dropped)
    names = partition_names()
    assert partition_name(OLDEST) not in names
    assert {partition_name(MIDDLE), partition_name(LATEST), DEFAULT_PARTITION} <= names
    acme = UsageEvent.objects.filter(tenant_id=acme_key.api_key.tenant_id)
    assert not acme.filter(created_at__lt=MIDDLE).exists()
    assert acme.filter(created_at__gte=MIDDLE).count() == 4
    record = LedgerPartitionDrop.objects.get(partition=partition_name(OLDEST))
    assert (record.events, record.cost_usd, record.retention_months) == (4, Decimal("0.44"), 3)
    audit = AuditEntry.objects.get(action="ledger.partition_drop", target_id=str(record.pk))
    assert audit.after is not None and audit.after["events"] == 4 and audit.after["cost_usd"] == "0.44"
    # The rollups of the dropped days: those of before, plus the late events', rolled up first
    # (their deltas consumed: nothing of the dropped month is left to fold).
    oldest_days = {k: v for k, v in rollups_by_slice().items() if k[0] < MIDDLE.date()}
    assert sum(v[5] for v in oldest_days.values()) == Decimal("0.44")
    assert not UsageRollupDelta.objects.filter(day__lt=MIDDLE.date()).exists()
    assert {k: v for k, v in rollups_before.items() if k[0] >= MIDDLE.date()} == {
        k: v for k, v in rollups_by_slice().items() if k[0] >= MIDDLE.date()
    }
    after = usage_totals(acme_http)
    assert after["totals"] == before["totals"] and after["data"] == before["data"]

    # A dropped day marked stale again is not recomputed to nothing.
    UsageRollupStale.objects.create(
        day=(OLDEST + dt.timedelta(days=1)).date(), tenant=acme_key.api_key.tenant
    )
    usage_rollups_refresh()
    assert not UsageRollupStale.objects.exists()
    assert usage_totals(acme_http)["totals"] == before["totals"]
    # An event of a dropped month arriving now is set aside, not stored alone in its month.
    result = usage_events_store(events=[event(acme_key, "req_ret_too_late", OLDEST + dt.timedelta(days=2))])
    assert [e.request_id for e in result.retired] == ["req_ret_too_late"] and result.stored == 0
    assert not UsageEvent.objects.filter(request_id="req_ret_too_late").exists()
    # The same through the write-ahead stream: the flusher puts it with the dead letters, saying why.
    stream = redis.Redis.from_url(settings.REDIS_URL)
    late_again = event(acme_key, "req_ret_via_stream", OLDEST + dt.timedelta(days=2))
    stream.xadd(STREAM, {PAYLOAD_FIELD: event_encode(late_again)})

    def dead_letter() -> list[dict[bytes, bytes]]:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], stream.xrange(DEAD_LETTERS))
        return [fields for _, fields in entries if b"req_ret_via_stream" in fields[PAYLOAD_FIELD]]

    assert wait_until(dead_letter, what="the late event set aside")[0][b"reason"] == RETIRED_REASON.encode()
    assert not UsageEvent.objects.filter(request_id="req_ret_via_stream").exists()
    assert usage_totals(acme_http)["totals"] == before["totals"]
    assert ledger_partitions_drop_expired(months=3) == []  # nothing more to drop
    assert UsageDailyRollup.objects.filter(day__lt=MIDDLE.date()).count() == len(oldest_days)


def test_retention_unset_keeps_everything(acme_key: CreatedKey, past_partitions: list[dt.datetime]) -> None:
    assert settings.MESH_LEDGER_RETENTION_MONTHS == 0
    before = {p.name for p in ledger_partitions()}
    assert ledger_partitions_drop_expired() == []
    assert {p.name for p in ledger_partitions()} == before


def test_a_lifetime_cap_still_counts_the_dropped_months(
    tenant_acme: Tenant, past_partitions: list[dt.datetime]
) -> None:
    """Rebuilding spend counters (after a Redis flush) sums a lifetime key's dropped months from their
    rollups, so retention never gives a lifetime cap its money back."""
    key = api_key_create(tenant=tenant_acme, name="forever", spend_cap_period="lifetime")
    usage_events_store(
        events=[
            event(key, "req_life_old", OLDEST + dt.timedelta(days=3), cost="1.25"),
            event(key, "req_life_mid", MIDDLE + dt.timedelta(days=3), cost="0.5"),
            event(key, "req_life_now", NOW, cost="0.125"),
        ]
    )
    usage_rollups_refresh()

    def lifetime_total() -> Decimal:
        totals = ledger_totals(now=dt.datetime.now(dt.UTC))
        return next(t.usd for t in totals if t.key_id == key.api_key.pk and t.period == "lifetime")

    assert lifetime_total() == Decimal("1.875")
    ledger_partitions_drop_expired(months=3)
    assert not UsageEvent.objects.filter(request_id="req_life_old").exists()
    assert lifetime_total() == Decimal("1.875")


def test_a_drop_blocked_by_a_long_query_gives_up_and_is_done_by_the_next_run(
    acme_key: CreatedKey, past_partitions: list[dt.datetime], settings: Any
) -> None:
    """DETACH needs the ledger alone for an instant: behind a report still reading, it waits
    MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S, then leaves everything as it was for the next run."""
    settings.MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S = 0.2
    usage_events_store(events=[event(acme_key, "req_block", OLDEST + dt.timedelta(days=1), cost="0.4")])
    usage_rollups_refresh()
    rollups = rollups_by_slice()
    db = connection.settings_dict
    reader = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=False
    )
    try:
        reader.execute(f"SELECT count(*) FROM {PARENT}")  # its transaction holds the ledger open
        assert ledger_partitions_drop_expired(months=3) == []
        assert partition_name(OLDEST) in partition_names()
        assert partition_of("req_block") == [partition_name(OLDEST)]
        assert not LedgerPartitionDrop.objects.exists() and rollups_by_slice() == rollups
    finally:
        reader.close()
    assert partition_name(OLDEST) in {d.name for d in ledger_partitions_drop_expired(months=3)}
    assert partition_name(OLDEST) not in partition_names() and rollups_by_slice() == rollups

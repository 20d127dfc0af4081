"""Rollups plus the deltas not yet folded into them equal the events, at every instant: after
duplicates, provisional rows rewritten to a final with another model, late events for old days,
writers, folds and recomputes hammering at once, and a fold or recompute SIGKILLed mid-statement.
Reports read them so (never usage_event) and two tenants never see each other's sums."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from tests.support.waiting import wait_until
from tests.usage.conftest import today, usage_event
from usage.folding import StaleSlice
from usage.models import UsageDailyRollup, UsageEvent, UsageRollupDelta, UsageRollupStale
from usage.rollups import rollup_slice_recompute, usage_rollups_refresh
from usage.store import usage_events_store
from usage.types import TokenUsage, UsageEventData

REPO_ROOT = Path(__file__).resolve().parents[2]
Sums = tuple[int, int, int, int, int, Decimal]
METRICS = "requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_usd"
SUMMED = (
    "sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), "
    "sum(cost_usd)"
)
EVENT_SUMS = (
    "count(*), count(*) FILTER (WHERE http_status >= 400), sum(prompt_tokens), sum(completion_tokens), "
    "sum(cached_tokens), sum(cost_usd)"
)
EVENT_DAY = "(created_at AT TIME ZONE 'UTC')::date"
EVENT_MODEL = "COALESCE(NULLIF(model_served, ''), model_requested)"
# Per grain: the events grouped as it groups them (written here, not taken from the aggregator),
# and the grain's rows plus the deltas not yet folded, grouped the same.
GRAINS = {
    "session": (
        f"SELECT {EVENT_DAY}, tenant_id, api_key_id, session_id, {EVENT_MODEL}, {EVENT_SUMS} "
        "FROM usage_usageevent GROUP BY 1, 2, 3, 4, 5",
        f"SELECT day, tenant_id, api_key_id, session_id, model, {SUMMED} FROM ("
        f"SELECT day, tenant_id, api_key_id, session_id, model, {METRICS} FROM usage_usagedailyrollup "
        f"UNION ALL SELECT day, tenant_id, api_key_id, session_id, model, {METRICS} "
        "FROM usage_usagerollupdelta) u GROUP BY 1, 2, 3, 4, 5 HAVING sum(requests) <> 0",
    ),
    "key": (
        f"SELECT {EVENT_DAY}, tenant_id, api_key_id, {EVENT_MODEL}, {EVENT_SUMS} "
        "FROM usage_usageevent GROUP BY 1, 2, 3, 4",
        f"SELECT day, tenant_id, api_key_id, model, {SUMMED} FROM ("
        f"SELECT day, tenant_id, api_key_id, model, {METRICS} FROM usage_usagedailykeyrollup "
        f"UNION ALL SELECT day, tenant_id, api_key_id, model, {METRICS} FROM usage_usagerollupdelta) u "
        "GROUP BY 1, 2, 3, 4 HAVING sum(requests) <> 0",
    ),
    "month": (
        f"SELECT date_trunc('month', {EVENT_DAY})::date, tenant_id, session_id, {EVENT_SUMS} "
        "FROM usage_usageevent GROUP BY 1, 2, 3",
        f"SELECT month, tenant_id, session_id, {SUMMED} FROM ("
        f"SELECT month, tenant_id, session_id, {METRICS} FROM usage_usagemonthlysessionrollup "
        f"UNION ALL SELECT date_trunc('month', day)::date, tenant_id, session_id, {METRICS} "
        "FROM usage_usagerollupdelta) u GROUP BY 1, 2, 3 HAVING sum(requests) <> 0",
    ),
}
ROLLUPS_ONLY = ("usage_usagedailyrollup", "usage_usagedailykeyrollup", "usage_usagemonthlysessionrollup")


def _keyed(rows: list[tuple[Any, ...]], width: int) -> dict[tuple[Any, ...], Sums]:
    return {
        row[:width]: (int(row[width]), int(row[width + 1]), int(row[width + 2]), int(row[width + 3]),
                      int(row[width + 4]), Decimal(row[width + 5]))
        for row in rows
    }  # fmt: skip


def mismatches(cursor: Any, *, with_deltas: bool = True) -> dict[str, Any]:
    """Every grain compared whole with the events, in the caller's snapshot; {} when all agree."""
    found: dict[str, Any] = {}
    for grain, (events_sql, rollups_sql) in GRAINS.items():
        if not with_deltas:
            rollups_sql = rollups_sql.replace(
                "FROM usage_usagerollupdelta", "FROM usage_usagerollupdelta WHERE false"
            )
        width = {"session": 5, "key": 4, "month": 3}[grain]
        cursor.execute(events_sql)
        events = _keyed(cursor.fetchall(), width)
        cursor.execute(rollups_sql)
        rolled = _keyed(cursor.fetchall(), width)
        if events != rolled:
            diff = {
                k: (events.get(k), rolled.get(k))
                for k in events.keys() | rolled.keys()
                if events.get(k) != rolled.get(k)
            }
            found[grain] = dict(list(diff.items())[:5])
    return found


def snapshot_mismatches() -> dict[str, Any]:
    """mismatches() in one REPEATABLE READ snapshot: what any report statement could see right now."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return mismatches(cursor)


def folded_exactly() -> None:
    """Everything folded: the rollups alone equal the events, no delta or mark left."""
    with connection.cursor() as cursor:
        assert mismatches(cursor, with_deltas=False) == {}
    assert not UsageRollupDelta.objects.exists()
    assert not UsageRollupStale.objects.exists()


def stream_entries(
    key: CreatedKey, *, days_ago: float, session: str
) -> tuple[UsageEventData, UsageEventData]:
    """A stream's provisional entry (no model served yet: grouped by the model asked) and its final
    one (served by another model, more tokens, another cost)."""
    provisional = UsageEventData(
        request_id=f"req_{uuid.uuid4().hex}", tenant_id=key.api_key.tenant_id, key_id=key.api_key.pk,
        model_requested="openai/gpt-4o-mini", model_served="", session_id=session,
        started_at=time.time() - days_ago * 86400, tokens=TokenUsage(prompt_tokens=40), streamed=True,
        provisional=True, cost_usd=Decimal("0.000006"), latency_ms=1, error_code="stream_unfinished",
    )  # fmt: skip
    final = dataclasses.replace(
        provisional, model_served="openai/gpt-4o", provisional=False, latency_ms=900, error_code=None,
        tokens=TokenUsage(prompt_tokens=40, completion_tokens=123, cached_tokens=8),
        cost_usd=Decimal("0.001234567"),
    )  # fmt: skip
    return provisional, final


def random_event(
    key: CreatedKey, rng: random.Random, *, days: tuple[float, float], sessions: list[str]
) -> UsageEventData:
    """An event some days back, in one of `sessions`, costing up to 0.1 USD to the nano-dollar."""
    return usage_event(
        key,
        days_ago=rng.uniform(*days),
        session=rng.choice(sessions),
        cost=Decimal(rng.randint(1, 10**8)) / 10**9,
        failed=rng.random() < 0.1,
    )


def test_duplicates_rewrites_and_late_events_keep_rollups_plus_deltas_equal_to_events(
    acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    rng = random.Random(11)
    first = [random_event(acme_key, rng, days=(0, 70), sessions=["", "a", "b"]) for _ in range(150)]
    usage_events_store(events=first)
    usage_events_store(events=first[:90])  # delivered twice: stored once, no delta added
    assert UsageEvent.objects.count() == 150
    assert sum(UsageRollupDelta.objects.values_list("requests", flat=True)) == 150
    assert snapshot_mismatches() == {}

    provisional, final = stream_entries(globex_key, days_ago=0, session="live")
    usage_events_store(events=[provisional])
    usage_rollups_refresh()  # the provisional entry folded: the final must move it out of its group
    usage_events_store(events=[final, provisional])  # and a late duplicate of the provisional one
    usage_events_store(events=[final])
    assert snapshot_mismatches() == {}
    globex_models = UsageRollupDelta.objects.filter(tenant_id=globex_key.api_key.tenant_id)
    assert sorted(globex_models.values_list("model", "requests")) == [
        ("openai/gpt-4o", 1),
        ("openai/gpt-4o-mini", -1),
    ]

    usage_rollups_refresh()
    folded_exactly()
    # The provisional entry's group emptied: its rollup rows are gone, not left at zero.
    assert not UsageEvent.objects.filter(model_served="").exists()
    with connection.cursor() as cursor:
        for table in ROLLUPS_ONLY:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE requests = 0")
            assert cursor.fetchone() == (0,), table

    # Late events for days folded long ago, then a recompute of one of them: still exact.
    late = [usage_event(acme_key, days_ago=65 + n, session="late", cost=Decimal("0.5")) for n in range(3)]
    usage_events_store(events=late)
    assert snapshot_mismatches() == {}
    late_day = dt.datetime.fromtimestamp(late[0].started_at, dt.UTC).date()
    rollup_slice_recompute(stale=StaleSlice(late_day, acme_key.api_key.tenant_id, 0, recompute=True))
    assert snapshot_mismatches() == {}
    usage_rollups_refresh()
    folded_exactly()


class Hammer:
    """Threads writing, folding, recomputing and checking at once, each on its own connection."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.mismatches: list[dict[str, Any]] = []
        self.checks = 0
        self.writing = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # reported by the test, with the thread's traceback
                self.errors.append(error)
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(120)


def writer(
    keys: list[CreatedKey], seed: int, batches: int, enough: Callable[[], bool] = lambda: True
) -> Callable[[], None]:
    """Batches of new events over two months, duplicates of earlier ones, streams' provisional
    entries and, a few batches later, their finals (another model), some of them twice: at least
    `batches` of them, and on until `enough()` (so a slow host still checks while writes land)."""

    def run() -> None:
        rng = random.Random(seed)
        sent: list[UsageEventData] = []
        finals: list[UsageEventData] = []
        written = 0
        while written < batches or not enough():
            written += 1
            batch = [
                random_event(rng.choice(keys), rng, days=(0, 45), sessions=["", "s1", "s2", "s3"])
                for _ in range(rng.randint(1, 12))
            ]
            for _ in range(rng.randint(0, 2)):
                provisional, final = stream_entries(
                    rng.choice(keys), days_ago=rng.uniform(0, 3), session="s1"
                )
                batch.append(provisional)
                finals.append(final)
            if finals and rng.random() < 0.4:
                batch.append(finals.pop(0))
            batch += rng.sample(sent, min(len(sent), rng.randint(0, 4)))  # redelivered
            rng.shuffle(batch)
            usage_events_store(events=batch)
            sent += batch
        usage_events_store(events=finals + rng.sample(sent, min(len(sent), 20)))

    return run


def test_writers_folds_and_recomputes_at_once_stay_exact_at_every_instant(
    acme_key: CreatedKey, globex_key: CreatedKey, tenant_acme: Tenant
) -> None:
    keys = [acme_key, globex_key, api_key_create(tenant=tenant_acme, name="acme batch")]
    hammer = Hammer()
    hammer.writing.set()
    checked = lambda: hammer.checks >= 5 or bool(hammer.errors)  # noqa: E731
    writers = [writer(keys, seed, batches=120, enough=checked) for seed in (1, 2, 3)]

    def folder() -> None:
        while hammer.writing.is_set():
            usage_rollups_refresh()

    def recomputer() -> None:
        rng = random.Random(9)
        while hammer.writing.is_set():
            day = today() - dt.timedelta(days=rng.randint(0, 3))
            tenant_id = rng.choice(keys).api_key.tenant_id
            rollup_slice_recompute(stale=StaleSlice(day, tenant_id, 0, recompute=True))

    def checker() -> None:
        while hammer.writing.is_set():
            found = snapshot_mismatches()
            hammer.checks += 1
            if found:
                hammer.mismatches.append(found)

    # Eight connections at once (seven threads and this one) beside whatever the rest of the suite
    # holds: a pool of DB_POOL_MAX_SIZE (10) ran out after 10 s once in a full run.
    pool = getattr(connection, "pool", None)  # PostgreSQL's DatabaseWrapper: the psycopg pool
    assert pool is not None
    sizes = pool.min_size, pool.max_size
    pool.resize(min_size=sizes[0], max_size=sizes[1] + 8)
    try:
        for target in (*writers, folder, folder, recomputer, checker):
            hammer.start(target)
        for thread in hammer.threads[: len(writers)]:
            thread.join(120)
        hammer.writing.clear()
        hammer.join()
    finally:
        pool.resize(min_size=sizes[0], max_size=sizes[1])

    assert hammer.errors == []
    assert hammer.mismatches == []
    assert hammer.checks >= 5
    assert UsageEvent.objects.filter(provisional=True).count() == 0
    usage_rollups_refresh()
    folded_exactly()


def _child_env() -> dict[str, str]:
    database = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "meshplatform.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "test-secret",
    }


def _dsn() -> str:
    database = connection.settings_dict
    return f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


@pytest.fixture
def lock_holder() -> Iterator[psycopg.Connection[Any]]:
    """A connection of the test's own, to hold a row lock the aggregator's statement will wait on."""
    with psycopg.connect(_dsn()) as holder:
        yield holder


def _run_until_blocked(code: str, holder: psycopg.Connection[Any], what: str) -> None:
    """Start `code` in a Django process, wait until its statement waits on `holder`'s lock (mid-
    statement, inside its transaction), SIGKILL it, then let the lock go."""
    script = f"import django; django.setup(); {code}"
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=_child_env())
    try:
        # Its own connection: pg_stat_activity stays as first read within a transaction.
        with psycopg.connect(_dsn(), autocommit=True) as probe:
            wait_until(
                lambda: (
                    child.poll() is None
                    and probe.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND query LIKE %s",
                        [f"%{what}%"],
                    ).fetchone()
                ),
                timeout=30,
                what=f"the child to block in {what}",
            )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    holder.rollback()


def test_a_fold_and_a_recompute_killed_mid_statement_lose_nothing_and_count_nothing_twice(
    acme_key: CreatedKey, globex_key: CreatedKey, lock_holder: psycopg.Connection[Any]
) -> None:
    rng = random.Random(4)
    for key in (acme_key, globex_key):
        usage_events_store(
            events=[random_event(key, rng, days=(0, 2), sessions=["x", "y"]) for _ in range(60)]
        )
    usage_rollups_refresh()
    late = [usage_event(acme_key, days_ago=0, session="x", cost=Decimal("0.000000007")) for _ in range(5)]
    usage_events_store(events=late)
    deltas = UsageRollupDelta.objects.count()
    # The fold: the session grain's upsert waits on a row the test holds, after the deltas' delete.
    lock_holder.execute(
        "SELECT 1 FROM usage_usagedailyrollup WHERE tenant_id = %s AND day = %s AND session_id = 'x' "
        "FOR UPDATE",
        [acme_key.api_key.tenant_id, today()],
    )
    _run_until_blocked(
        "from usage.rollups import usage_rollups_refresh; usage_rollups_refresh()",
        lock_holder,
        "usage_usagerollupdelta",
    )
    assert UsageRollupDelta.objects.count() == deltas  # its delete rolled back with it
    assert snapshot_mismatches() == {}

    # The recompute: holds the slice's mark (writers wait) when the month's update waits on the test.
    lock_holder.execute(
        "SELECT 1 FROM usage_usagemonthlysessionrollup WHERE tenant_id = %s AND session_id = 'x' FOR UPDATE",
        [acme_key.api_key.tenant_id],
    )
    _run_until_blocked(
        "from usage.folding import StaleSlice; from usage.rollups import rollup_slice_recompute; "
        "import datetime; rollup_slice_recompute(stale=StaleSlice("
        f"datetime.date.fromisoformat('{today()}'), {acme_key.api_key.tenant_id}, 0, True))",
        lock_holder,
        "usage_usagemonthlysessionrollup",
    )
    usage_events_store(
        events=[usage_event(acme_key, days_ago=0, session="x", cost=Decimal("1"))]
    )  # not locked out
    assert snapshot_mismatches() == {}
    usage_rollups_refresh()
    folded_exactly()


def test_reports_over_http_are_exact_before_the_fold_and_never_read_the_events(
    acme_key: CreatedKey, globex_key: CreatedKey, django_user_model: Any
) -> None:
    for key, seed in ((acme_key, 1), (globex_key, 2)):
        rng = random.Random(seed)
        sessions = [f"{key.api_key.name}-{n}" for n in range(3)]
        usage_events_store(
            events=[random_event(key, rng, days=(1, 20), sessions=sessions) for _ in range(40)]
        )
    usage_rollups_refresh()
    # Today's slices: written, not folded (their marks and deltas wait for the aggregator).
    for key, cost in ((acme_key, "0.123456789"), (globex_key, "7.000000001")):
        usage_events_store(events=[usage_event(key, days_ago=0, session="today", cost=Decimal(cost))])
    provisional, final = stream_entries(acme_key, days_ago=0, session="today")
    usage_events_store(events=[provisional])
    usage_events_store(events=[final])
    assert UsageRollupStale.objects.filter(day=today()).count() == 2
    assert UsageRollupDelta.objects.filter(day=today()).exists()

    acme = UsageEvent.objects.filter(tenant_id=acme_key.api_key.tenant_id)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {acme_key.plaintext}")
    finance = Client()
    finance.force_login(django_user_model.objects.create_superuser("fin", password=None))
    with CaptureQueriesContext(connection) as queries:
        for group_by in ("day", "session_id", "model", "key"):
            response = api.get(
                "/v1/usage", {"group_by": group_by, "from": str(today() - dt.timedelta(days=30))}
            )
            assert response.status_code == 200, response.content[:300]
            body = response.json()
            assert body["totals"]["requests"] == acme.count(), group_by
            assert Decimal(body["totals"]["cost_usd"]) == sum(acme.values_list("cost_usd", flat=True)), (
                group_by
            )
            assert sum(group["totals"]["requests"] for group in body["data"]) == acme.count()
        today_models = api.get("/v1/usage", {"group_by": "model", "from": str(today())}).json()
        assert {g["group"]: g["totals"]["requests"] for g in today_models["data"]} == {
            "openai/gpt-4o-mini": 1,
            "openai/gpt-4o": 1,
        }
        for group_by in ("day", "tenant", "model", "key", "session_id"):
            page = finance.get("/admin/usage/usagereport/", {"group_by": group_by})
            assert page.status_code == 200
            total = UsageEvent.objects.count()
            assert f'data-metric="requests" data-raw="{total}"' in page.content.decode(), group_by
        assert finance.get("/admin/usage/usagereport/top/", {"top": "session_id"}).status_code == 200
    report_sql = [query["sql"] for query in queries.captured_queries]
    assert any("usage_usagerollupdelta" in sql for sql in report_sql)
    assert [sql for sql in report_sql if "usage_usageevent" in sql] == []


def test_make_runs_embedded_sqlite_folds_and_reports_exactly(tmp_path: Path) -> None:
    # SQLite as make run's embedded mode has it; Redis stays the test run's (fakeredis, the embedded
    # stand-in, is not a dependency of the test environment).
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "meshplatform.settings.dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "REDIS_URL": settings.REDIS_URL,
    }
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.embedded_rollups"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["vendor"] == "sqlite"
    assert result["events"]["requests"] == 41 and Decimal(result["events"]["cost"]) == 12
    expected = {
        "requests": 41,
        "models": {"openai/gpt-4o-mini": 40, "openai/gpt-4o": 1},
        "session_requests": 41,
        "top_sessions_exact": True,
    }
    for phase in ("unfolded", "folded", "recomputed"):
        report = result[phase]
        assert Decimal(report.pop("cost")) == Decimal(12), phase
        assert report == expected, phase
    assert (result["deltas_left"], result["empty_rollup_rows"]) == (0, 0)


def test_the_recompute_command_repairs_a_day_written_around_the_store(
    acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    rng = random.Random(8)
    for key in (acme_key, globex_key):
        events = [random_event(key, rng, days=(0, 3), sessions=["a", "b"]) for _ in range(30)]
        usage_events_store(events=events)
    usage_rollups_refresh()
    for key in (acme_key, globex_key):  # left unfolded
        usage_events_store(events=[random_event(key, rng, days=(0, 0), sessions=["a"])])
    # An event inserted by hand: no delta, no mark, so no fold can know of it.
    UsageEvent.objects.create(
        request_id="req_by_hand", tenant_id=acme_key.api_key.tenant_id, api_key_id=acme_key.api_key.pk,
        session_id="a", model_requested="openai/gpt-4o", http_status=200, prompt_tokens=5,
        cost_usd=Decimal("0.000000042"), created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
    )  # fmt: skip
    assert set(snapshot_mismatches()) == {"session", "key", "month"}
    globex = globex_key.api_key.tenant_id
    globex_before = (
        sorted(UsageDailyRollup.objects.filter(tenant_id=globex).values_list()),
        sorted(UsageRollupDelta.objects.filter(tenant_id=globex).values_list()),
    )
    out = io.StringIO()
    call_command(
        "usage_rollups_recompute", "--from", str(today() - dt.timedelta(days=5)), "--to", str(today()),
        "--tenant", "acme", stdout=out,
    )  # fmt: skip
    assert "recomputed 6 (day, tenant) slices" in out.getvalue()
    assert snapshot_mismatches() == {}
    assert not UsageRollupDelta.objects.filter(tenant_id=acme_key.api_key.tenant_id).exists()
    # The other tenant's rollups and deltas are as they were.
    assert globex_before == (
        sorted(UsageDailyRollup.objects.filter(tenant_id=globex).values_list()),
        sorted(UsageRollupDelta.objects.filter(tenant_id=globex).values_list()),
    )
    assert globex_before[1]
    usage_rollups_refresh()
    folded_exactly()

"""The Celery worker keeps its PostgreSQL connections: the flush every half second under beat
reuses one session instead of opening one per run (1,355 in 48 minutes before)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from django.db import connection

from tests.support.celery_worker import CeleryWorker
from tests.support.ledger import LedgerFlusher

APPLICATION = "mesh-worker-connections-test"


def _sample_worker_sessions(seconds: float) -> list[set[tuple[int, str]]]:
    """Every 50 ms for `seconds`, the (pid, start time) of each session the worker has open, read
    over one connection of our own (so sampling opens no sessions)."""
    settings = connection.settings_dict
    samples: list[set[tuple[int, str]]] = []
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"],
        autocommit=True,
    ) as conn:  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT pid, backend_start::text FROM pg_stat_activity WHERE application_name = %s",
                [APPLICATION],
            ).fetchall()
            samples.append({(row[0], row[1]) for row in rows})
            time.sleep(0.05)
    return samples


def test_the_prefork_worker_keeps_its_database_session(
    usage_gateway_env: Callable[..., dict[str, str]], ledger_flusher: LedgerFlusher, transactional_db: None
) -> None:
    env = usage_gateway_env(MESH_USAGE_FLUSH_INTERVAL_S="0.5", MESH_USAGE_ROLLUP_INTERVAL_S="0.5")
    env["DATABASE_URL"] += f"?application_name={APPLICATION}"
    with ledger_flusher.paused(), CeleryWorker(env=env, beat=True, pool="prefork") as worker:
        samples = _sample_worker_sessions(8)  # ~16 rollup refreshes, each reading the database
        runs = worker.output().count("usage.rollups_refresh")
    assert runs >= 8, worker.output()[-2000:]
    first = next((i for i, sample in enumerate(samples) if sample), None)
    assert first is not None, "the worker never connected"
    held = samples[first:]
    sessions = set().union(*held)
    # The pool's session(s) (psycopg may open a second while filling to min_size), open from the
    # first task on: not a new one per task, closed between tasks (9 in these 8 s before).
    assert len(sessions) <= 2, sessions
    for session in sessions:
        since = next(i for i, sample in enumerate(held) if session in sample)
        assert sum(1 for sample in held[since:] if session in sample) >= 0.9 * len(held[since:]), session

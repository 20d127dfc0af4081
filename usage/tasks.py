"""Celery tasks of the usage app: flush the write-ahead stream, fold rollup deltas into the daily
rollups, keep the ledger's monthly partitions (created ahead, dropped past retention)."""

from __future__ import annotations

from celery import shared_task

from usage.finalising import usage_provisional_finalise
from usage.flushing import usage_stream_flush
from usage.partitions import ledger_partitions_drop_expired, ledger_partitions_ensure
from usage.rollups import usage_rollups_refresh
from usage.spend_rebuild import spend_counters_rebuild_task  # noqa: F401


@shared_task(name="usage.flush", ignore_result=True)
def usage_flush() -> int:
    """On beat every MESH_USAGE_FLUSH_INTERVAL_S; overlapping runs share the work (consumer group)."""
    return usage_stream_flush().read


@shared_task(name="usage.rollups_refresh", ignore_result=True)
def usage_rollups_recompute() -> int:
    """On beat every MESH_USAGE_ROLLUP_INTERVAL_S: every stale slice's deltas folded (its cost is the
    writes since the last run), or the slice recomputed where its mark asks; safe to run twice or
    after a killed run."""
    return usage_rollups_refresh()


@shared_task(name="usage.provisional_finalise", ignore_result=True)
def usage_provisional_finalise_task() -> int:
    """On beat every MESH_STREAM_FINALISE_INTERVAL_S: streams cut off by a dead web worker."""
    return usage_provisional_finalise()


@shared_task(name="usage.ledger_partitions", ignore_result=True)
def ledger_partitions_maintain() -> int:
    """On beat every MESH_LEDGER_PARTITIONS_INTERVAL_S: the coming months' partitions created, then
    those past MESH_LEDGER_RETENTION_MONTHS dropped; returns how many partitions it created or dropped.
    Both steps are idempotent, so a missed or doubled run changes nothing."""
    created = ledger_partitions_ensure()
    return len(created) + len(ledger_partitions_drop_expired())

"""Every group of Redis keys one command or Lua script touches shares one hash slot, so none of
them raises CROSSSLOT on a Redis Cluster; and cluster mode keeps Celery's broker off the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

from redis.crc import key_slot

from keys.cache import cache_key, generation_key
from keys.limits import window_keys
from keys.spend import (
    holds_names,
    in_flight_name,
    key_counter_name,
    last_used_name,
    tenant_counter_name,
)
from tests.support.gateway import REPO_ROOT
from usage.recording import DEAD_LETTERS, OPEN, SANITIZED_COUNT, STREAM


def slots(names: list[str]) -> set[int]:
    return {key_slot(name.encode()) for name in names}


def test_a_keys_cache_entry_generation_and_rate_windows_share_a_slot() -> None:
    """The ADMIT script reads the entry and counts both windows; FILL reads the generation."""
    for key_hash in ["a" * 64, "0f" * 32]:
        windows, _, _ = window_keys(key_hash, 1_800_000_000.0)
        assert len(slots([cache_key(key_hash), generation_key(key_hash), *windows])) == 1
    assert slots([cache_key("a" * 64)]) != slots([cache_key("b" * 64)])  # keys spread over the cluster


def test_a_tenants_counters_holds_and_last_use_stamps_share_a_slot() -> None:
    """RESERVE, PROGRESS, BILL and RELEASE touch all of them in one script."""
    when = datetime(2026, 12, 2, tzinfo=UTC)
    for tenant_id in [1, 42, 90210]:
        counters = [
            key_counter_name(tenant_id, key_id, period, when)
            for key_id in [1, 7]
            for period in ["daily", "monthly", "lifetime"]
        ] + [tenant_counter_name(tenant_id, period, when) for period in ["daily", "monthly", "lifetime"]]
        names = [
            *counters,
            *map(in_flight_name, counters),
            *holds_names(tenant_id),
            last_used_name(tenant_id),
        ]
        assert len(slots(names)) == 1
    assert slots(holds_names(1)) != slots(holds_names(2))


def test_the_ledgers_stream_and_its_companions_share_a_slot() -> None:
    """The flusher acknowledges, dead-letters and counts in one MULTI."""
    assert len(slots([STREAM, OPEN, DEAD_LETTERS, SANITIZED_COUNT])) == 1


def test_cluster_mode_refuses_to_start_with_celerys_broker_on_the_cluster() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(DJANGO_SETTINGS_MODULE="meshplatform.settings.test", REDIS_CLUSTER="true")
    env["REDIS_URL"] = "redis://127.0.0.1:7000"
    setup = [sys.executable, "-c", "import django; django.setup()"]
    refused = subprocess.run(setup, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "Celery's Redis broker does not support Redis Cluster" in refused.stderr
    env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/4"
    started = subprocess.run(setup, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr

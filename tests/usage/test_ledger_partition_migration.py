"""Migration 0010 on a database that already holds events: forward to the partitioned ledger, back to
0009's plain table, and forward again, every row kept (same ids, one per request, the sequence
continuing), in a database of its own (the migration renames the ledger table under its users)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]
DB = settings.DATABASES["default"]
NAME = f"{os.environ.get('MESH_TEST_DB_NAME', 'test_mesh')}_migrate"
# Events of three months (one of them far back) written through the ORM while the ledger is at 0009.
SEED = """
import datetime as dt
from decimal import Decimal
from keys.models import Tenant
from keys.services import api_key_create
from usage.models import UsageEvent
tenant = Tenant.objects.create(name="migrated")
key = api_key_create(tenant=tenant, name="k").api_key
months = [dt.datetime(2019, 5, 3, tzinfo=dt.UTC), dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
          dt.datetime.now(dt.UTC)]
UsageEvent.objects.bulk_create([
    UsageEvent(request_id=f"req_mig_{n}", tenant=tenant, api_key=key, http_status=200,
               cost_usd=Decimal(n) / 100, prompt_tokens=n, created_at=months[n % 3])
    for n in range(30)
])
"""


def server(dbname: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=DB["HOST"], port=DB["PORT"] or 5432, user=DB["USER"], password=DB["PASSWORD"] or None,
        dbname=dbname, autocommit=True,
    )  # fmt: skip


def manage(*args: str) -> str:
    url = f"postgres://{DB['USER']}@{DB['HOST']}:{DB['PORT'] or 5432}/{NAME}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "meshplatform.settings.test"}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def scratch_database() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with server("postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{NAME}"')
        admin.execute(f'CREATE DATABASE "{NAME}"')
    try:
        manage("migrate", "-v0")
        manage("migrate", "usage", "0009", "-v0")
        manage("shell", "-c", SEED)
        with server(NAME) as connection:
            yield connection
    finally:
        with server("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')


def rows(connection: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return connection.execute(
        "SELECT id, request_id, created_at, cost_usd, prompt_tokens FROM usage_usageevent ORDER BY id"
    ).fetchall()


def placement(connection: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    found = connection.execute(
        "SELECT tableoid::regclass::text, count(*) FROM usage_usageevent GROUP BY 1"
    ).fetchall()
    return {str(name): int(str(count)) for name, count in found}


@pytest.mark.slow
def test_migration_partitions_a_ledger_with_events_and_back(
    scratch_database: psycopg.Connection[tuple[object, ...]],
) -> None:
    connection = scratch_database
    seeded = rows(connection)
    assert len(seeded) == 30 and placement(connection) == {"usage_usageevent": 30}

    manage("migrate", "usage", "-v0")

    kind = connection.execute("SELECT relkind FROM pg_class WHERE relname = 'usage_usageevent'").fetchone()
    assert kind == ("p",)
    assert rows(connection) == seeded
    months = placement(connection)
    assert sorted(months.values()) == [10, 10, 10] and "usage_usageevent_p2019_05" in months
    assert "usage_usageevent_default" not in months  # every month with events got its partition
    inserted = connection.execute(
        "INSERT INTO usage_usageevent (request_id, tenant_id, api_key_id, session_id, template_id, "
        "model_requested, model_served, provider, attempts, prompt_tokens, completion_tokens, cached_tokens, "
        "tokens_estimated, cost_usd, http_status, error_code, streamed, cancelled, created_at) "
        "SELECT 'req_mig_new', tenant_id, api_key_id, '', '', '', '', '', '[]', 0, 0, 0, false, 0, 200, '', "
        "false, false, now() FROM usage_usageevent LIMIT 1 RETURNING id"
    ).fetchone()
    assert inserted is not None and int(str(inserted[0])) > max(int(str(row[0])) for row in seeded)
    with pytest.raises(psycopg.errors.UniqueViolation):  # same request, same start: one row
        connection.execute(
            "INSERT INTO usage_usageevent SELECT * FROM usage_usageevent WHERE request_id = 'req_mig_0'"
        )
    assert "No changes detected" in manage("makemigrations", "--check", "--dry-run", "usage")

    manage("migrate", "usage", "0009", "-v0")

    assert connection.execute(
        "SELECT relkind FROM pg_class WHERE relname = 'usage_usageevent'"
    ).fetchone() == ("r",)
    back = rows(connection)
    assert back[:30] == seeded and len(back) == 31
    unique = connection.execute(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'usage_usageevent'::regclass AND contype = 'u' "
        "AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'usage_usageevent'::regclass "
        "AND attname = 'request_id')]"
    ).fetchone()
    assert unique == (1,)  # request_id alone unique again, as 0009 had it

    manage("migrate", "usage", "-v0")
    assert rows(connection) == back

"""Batch throughput and worker memory, measured once (not a test): a LINES-line batch against the
upstream simulator, run by a real Celery worker; prints lines/s and the worker's peak RSS.

    REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python scripts/batch_bench.py --lines 10000

Uses its own PostgreSQL database (`mesh_batch_bench`, created and migrated) and flushes the
Redis database of REDIS_URL: point it at an idle one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
DATABASE = "mesh_batch_bench"
os.environ["DJANGO_SETTINGS_MODULE"] = "meshplatform.settings.test"
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
os.environ.setdefault("MESH_FILES_ROOT", str(Path(tempfile.gettempdir()) / "mesh-batch-bench-files"))


def create_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def write_input(path: Path, lines: int) -> None:
    import orjson

    with path.open("wb") as out:
        for i in range(lines):
            body = {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Line {i}: say something short."}],
                "max_tokens": 32,
            }
            out.write(
                orjson.dumps(
                    {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
                )
            )
            out.write(b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="MESH_BATCH_CONCURRENCY_PER_TENANT")
    args = parser.parse_args()
    create_database()

    import django

    django.setup()
    import psutil
    import redis
    from django.conf import settings
    from django.core.files.uploadedfile import UploadedFile
    from django.core.management import call_command

    from jobs.models import Batch
    from jobs.services.batches import batch_create
    from jobs.services.files import file_store
    from keys.selectors import resolved_key_from_model
    from keys.services import api_key_create, tenant_create
    from routing.catalog import catalog_seed
    from simulator.server import SimulatorServer
    from tests.support.celery_worker import CeleryWorker

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    catalog_seed()
    tenant = tenant_create(name=f"bench-{time.time_ns()}")
    created = api_key_create(tenant=tenant, name="bench")
    key = resolved_key_from_model(created.api_key)
    with tempfile.TemporaryDirectory() as scratch, SimulatorServer() as simulator:
        source = Path(scratch) / "input.jsonl"
        write_input(source, args.lines)
        with source.open("rb") as handle:
            upload = UploadedFile(handle, name="input.jsonl", size=source.stat().st_size)
            stored = file_store(tenant_id=tenant.pk, upload=upload, purpose="batch")
        env = {
            "DATABASE_URL": os.environ["DATABASE_URL"],
            "REDIS_URL": settings.REDIS_URL,
            "OPENAI_API_KEY": "sk-sim",
            "OPENAI_BASE_URL": simulator.openai_base_url,
            "MESH_BATCH_CONCURRENCY_PER_TENANT": str(args.concurrency),
            "MESH_USAGE_RECORDING": "on",
        }
        worker = CeleryWorker(env=env, beat=True).start()
        process = psutil.Process(worker.process.pid if worker.process else 0)
        peak, started = 0, time.monotonic()
        batch = batch_create(
            key=key,
            input_file_id=stored.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata=None,
        )
        try:
            while True:
                peak = max(
                    peak, sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
                )
                batch.refresh_from_db()
                if batch.status in ("completed", "failed", "cancelled", "expired"):
                    break
                time.sleep(0.1)
        finally:
            worker.stop()
        wall = time.monotonic() - started
        batch = Batch.objects.get(pk=batch.pk)
        finished, began = batch.completed_at, batch.in_progress_at
        running = (finished - began).total_seconds() if finished and began else wall
        print(f"batch {batch.id}: {batch.status}, {batch.completed} completed, {batch.failed} failed")
        rate, wall_rate = args.lines / running, args.lines / wall
        print(f"lines/s: {rate:.1f} while in progress ({running:.1f}s), {wall_rate:.1f} wall")
        print(f"worker peak RSS (with beat): {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

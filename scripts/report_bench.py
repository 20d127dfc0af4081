"""The usage report's speed at a million events, measured once (not a test): a throwaway PostgreSQL
database (`mesh_report_bench`) is created, migrated and seeded by `manage.py usage_report_bench`
(1 M events, 20 tenants, 50,000 sessions over 30 days, today's 42,000 left unfolded), the report
page timed with today not folded, the fold, then folded; the database is dropped at the end.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python scripts/report_bench.py [--events N] [--keep]

With --session-top it runs `manage.py usage_session_top_bench` instead (5 M sessions in one
tenant-month, seeded into the rollups: Top sessions and the first page grouped by session, by the
full statement and by the threshold algorithm). --database names the throwaway database (another
checkout's bench may be using the default one).

Redis holds the admin's login session only (nothing is flushed): point REDIS_URL at a database of yours.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import LiteralString

REPO_ROOT = Path(__file__).resolve().parent.parent
DATABASE = "mesh_report_bench"
SERVER = "postgresql://postgres@127.0.0.1:5432"


def _admin(sql: LiteralString) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards (to EXPLAIN).")
    parser.add_argument("--session-top", action="store_true", help="Run usage_session_top_bench instead.")
    parser.add_argument("--sessions", type=int, default=5_000_000, help="With --session-top.")
    parser.add_argument("--database", default=DATABASE, help="The throwaway database's name.")
    parser.add_argument("--days-only", action="store_true", help="With --session-top: its day ranges only.")
    options = parser.parse_args()
    database = str(options.database)
    if not database.replace("_", "").isalnum():
        parser.error("--database: letters, digits and underscores only")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "meshplatform.settings.test",
        "DATABASE_URL": f"{SERVER}/{database}",
        "PYTHONUNBUFFERED": "1",  # its progress as it goes
    }
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{database}"')
    try:
        subprocess.run([*manage, "migrate", "--verbosity", "0"], env=env, check=True, cwd=REPO_ROOT)
        # The admin page renders hashed static URLs: a fresh clone has no manifest yet.
        subprocess.run(
            [*manage, "collectstatic", "--noinput", "--verbosity", "0"], env=env, check=True, cwd=REPO_ROOT
        )
        bench = (
            ["usage_session_top_bench", "--sessions", str(options.sessions)]
            + (["--days-only"] if options.days_only else [])
            if options.session_top
            else ["usage_report_bench", "--events", str(options.events)]
        )
        subprocess.run(
            [*manage, *bench, "--runs", str(options.runs)],
            env=env,
            check=True,
            cwd=REPO_ROOT,
        )
    finally:
        if not options.keep:
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()

"""`make test`: make sure PostgreSQL and Redis answer (starting local ones if needed), then run pytest."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if answers(host, port):
            return
        time.sleep(0.5)
    sys.exit(f"make test: {what} is not answering on {host}:{port} and could not be started.")


def ensure_postgres() -> None:
    if os.environ.get("DATABASE_URL") or answers("127.0.0.1", 5432):
        return
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if not versions or not shutil.which("pg_ctlcluster"):
        sys.exit("make test: PostgreSQL is not running and no local cluster exists; set DATABASE_URL.")
    print("make test: starting the local PostgreSQL cluster", flush=True)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"], check=False
    )
    wait_for("127.0.0.1", 5432, "PostgreSQL")


def ensure_redis() -> None:
    if os.environ.get("REDIS_URL") or answers("127.0.0.1", 6379):
        return
    if not shutil.which("redis-server"):
        sys.exit("make test: Redis is not running and redis-server is not installed; set REDIS_URL.")
    print("make test: starting a local Redis", flush=True)
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=False,
    )
    wait_for("127.0.0.1", 6379, "Redis")


def main() -> None:
    ensure_postgres()
    ensure_redis()
    command = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    sys.exit(subprocess.call(command, cwd=REPO_ROOT))


if __name__ == "__main__":
    main()

"""`make run`: migrate, collect static files, seed the demo tenant/admin/key, start gateway and worker.

With no env set it runs on embedded defaults: SQLite, an in-process Redis-compatible
server (fakeredis over TCP, shared by the gateway and the worker), a filesystem
Celery broker, and the project's upstream simulator for `openai/*` and
`openrouter/*` when no provider key is configured.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import environ

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from simulator.server import SimulatorServer, free_port  # noqa: E402

PORT = int(os.environ.get("PORT", "8000"))
PROVIDER_KEYS = (
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "AZURE_OPENAI_API_KEY",
)


def start_embedded_redis() -> str:
    try:
        from fakeredis import TcpFakeServer
    except ImportError:  # `make run` installs it; a bare `python scripts/run.py` may not have
        needs = ".venv/bin/pip install -r requirements-embedded.txt"
        raise SystemExit(f"The embedded Redis needs its packages: {needs}") from None

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"redis://127.0.0.1:{port}/0"


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def main() -> None:
    if (REPO_ROOT / ".env").exists():
        environ.Env.read_env(REPO_ROOT / ".env")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "meshplatform.settings.dev"),
    }
    notes: list[str] = []
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = start_embedded_redis()
        env.setdefault("CELERY_BROKER_URL", "filesystem://")
        (REPO_ROOT / ".run" / "broker" / "processed").mkdir(parents=True, exist_ok=True)
        notes.append(
            f"Redis: embedded in-process server at {env['REDIS_URL']} (set REDIS_URL for a real one)"
        )
    if not env.get("DATABASE_URL"):
        notes.append("Database: SQLite at db.sqlite3 (set DATABASE_URL for PostgreSQL)")
    simulator: SimulatorServer | None = None
    if not any(env.get(name) for name in PROVIDER_KEYS):
        simulator = SimulatorServer()
        simulator.start()
        for provider in ("OPENAI", "OPENROUTER"):
            env[f"{provider}_API_KEY"] = "sk-simulator"
            env[f"{provider}_BASE_URL"] = simulator.openai_base_url
        env.update(
            ANTHROPIC_API_KEY="sk-ant-simulator",
            ANTHROPIC_BASE_URL=f"{simulator.base_url}/v1",
            GEMINI_API_KEY="gemini-simulator",
            GEMINI_BASE_URL=f"{simulator.base_url}/v1beta",
            AZURE_OPENAI_API_KEY="azure-simulator",
            AZURE_OPENAI_BASE_URL=simulator.base_url,
        )
        notes.append(
            "Providers: no provider key is set, so openai/*, openrouter/*, anthropic/*, gemini/* and "
            f"azure/* go to the local upstream simulator at {simulator.base_url}, which speaks each "
            "one's wire format (set OPENAI_API_KEY, ANTHROPIC_API_KEY, ... for real providers)"
        )
    else:
        configured = [name.removesuffix("_API_KEY").lower() for name in PROVIDER_KEYS if env.get(name)]
        notes.append(f"Providers configured: {', '.join(configured)}")

    # One Prometheus multiprocess directory for the gateway's workers and the Celery worker, emptied
    # at each start (samples of a previous run's processes would otherwise be summed in).
    metrics_dir = REPO_ROOT / ".run" / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")  # the admin's CSS/JS, served by the app itself
    seeded = manage(env, "seed_demo").strip().splitlines()
    login, key = seeded[-2], seeded[-1]

    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "meshplatform.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(PORT),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--lifespan",
                "on",
            ],
            cwd=REPO_ROOT,
            env=env,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "meshplatform",
                "worker",
                "-B",
                "--loglevel",
                "WARNING",
                "--concurrency",
                "1",
                "-s",
                str(REPO_ROOT / ".run" / "celerybeat-schedule"),
            ],
            cwd=REPO_ROOT,
            env=env,
        ),
    ]
    (REPO_ROOT / ".run").mkdir(exist_ok=True)
    time.sleep(2)
    base = f"http://127.0.0.1:{PORT}"
    print(
        "\n".join(
            [
                "",
                "Mesh gateway is running.",
                *[f"  {note}" for note in notes],
                f"  Admin:    {base}/admin/  ({login})",
                f"  API:      {base}/v1  (OpenAI-compatible)",
                f"  Demo key: {key}",
                "",
                "Try it:",
                f"  curl {base}/v1/chat/completions -H 'Authorization: Bearer {key}' "
                "-H 'Content-Type: application/json' "
                '-d \'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}\'',
                "",
                "Press Ctrl+C to stop.",
            ]
        ),
        flush=True,
    )

    def stop(*_: object) -> None:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if simulator is not None:
            simulator.stop()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while all(process.poll() is None for process in processes):
        time.sleep(0.5)
    print("A process exited; stopping.", file=sys.stderr)
    stop()


if __name__ == "__main__":
    main()

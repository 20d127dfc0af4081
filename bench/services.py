"""The processes under test: provisioning and running the gateway, and metering its CPU and memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

from simulator.server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where the bench runs: its own database and Redis database unless the environment says otherwise
# (MESH_BENCH_DATABASE_URL, MESH_BENCH_REDIS_URL), so parallel checkouts need not share them.
DATABASE_URL = os.environ.get("MESH_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mesh_bench")
REDIS_URL = os.environ.get("MESH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
_database = urlsplit(DATABASE_URL)
DATABASE_NAME = _database.path.lstrip("/") or "mesh_bench"
PG_ARGS = [
    "-h", _database.hostname or "127.0.0.1",
    "-p", str(_database.port or 5432),
    "-U", _database.username or "postgres",
]  # fmt: skip
PG_ENV = {**os.environ, **({"PGPASSWORD": _database.password} if _database.password else {})}
TENANT = "bench"
GATEWAY_WORKERS = 2
START_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 180.0


class BenchSetupError(RuntimeError):
    """Something the benchmark needs could not be provisioned; the message says what and shows its output."""


def gateway_env(simulator_openai_url: str, *, metrics: bool) -> dict[str, str]:
    """The gateway's environment; `metrics` sets MESH_METRICS_TOKEN (samples are taken only then)."""
    environ = {name: value for name, value in os.environ.items() if name != "MESH_METRICS_TOKEN"}
    return {
        **environ,
        **({"MESH_METRICS_TOKEN": "bench"} if metrics else {}),
        "DJANGO_SETTINGS_MODULE": "meshplatform.settings.production",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback, no TLS proxy in front
        "MESH_DRAIN_NOTICE_S": "0",  # no load balancer to warn: a stopped gateway stops at once
        "ALLOWED_HOSTS": "*",
        "OPENAI_API_KEY": "sk-sim",
        "OPENAI_BASE_URL": simulator_openai_url,
        # The simulator serves Anthropic's Messages API under the same /v1 (the anthropic/* cell).
        "ANTHROPIC_API_KEY": "sk-ant-sim",
        "ANTHROPIC_BASE_URL": simulator_openai_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }


def source_database(source: Path) -> tuple[str, str]:
    """The bench database (URL, name) for a checkout: this one's, or one of its own for another
    checkout (its migrations differ), named after its directory."""
    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/") or "mesh_bench"
    if source.resolve() != REPO_ROOT:
        name = f"{name}_{source.resolve().name}"
    return urlunsplit(parts._replace(path=f"/{name}")), name


def _run(
    command: list[str], env: dict[str, str] | None = None, *, root: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BenchSetupError(f"{' '.join(command)}: {error}") from error


def _require(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise BenchSetupError(f"{what} failed (exit {result.returncode}):\n{output}")
    return result.stdout


def provision_gateway(env: dict[str, str], *, root: Path = REPO_ROOT, database: str = DATABASE_NAME) -> str:
    """Create the database if missing, migrate, and mint a key with limits out of the way; returns the key.

    `root` is the checkout whose migrations and commands run (another one for an A/B run), with
    `database` its own database (env's DATABASE_URL must name it)."""
    exists = _run(
        ["psql", *PG_ARGS, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"], PG_ENV
    )
    _require(exists, "checking for the bench database")
    if exists.stdout.strip() != "1":
        _require(_run(["createdb", *PG_ARGS, database], PG_ENV), f"createdb {database}")
    manage = [sys.executable, "manage.py"]
    _require(_run([*manage, "migrate", "--no-input"], env, root=root), "manage.py migrate")
    # The tenant survives earlier runs; a failure here is fine as long as the key can be created below.
    _run([*manage, "create_tenant", TENANT], env, root=root)
    created = _run(
        [*manage, "create_api_key", "--tenant", TENANT, "--rpm", "100000000", "--rpd", "1000000000"],
        env,
        root=root,
    )
    lines = _require(created, "manage.py create_api_key").strip().splitlines()
    if not lines or not lines[-1].strip().startswith("rsk_"):
        raise BenchSetupError(f"create_api_key did not print an rsk_ key last:\n{created.stdout[-1000:]}")
    return lines[-1].strip()


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes] | None, log: Path | None, *, timeout_s: float = START_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BenchSetupError(f"gateway exited with {process.returncode}:\n{_tail(log)}")
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise BenchSetupError(f"{url}/healthz did not answer 200 within {timeout_s:g}s:\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""


WITH_JEMALLOC = REPO_ROOT / "scripts" / "with-jemalloc"


class Gateway:
    """`uvicorn meshplatform.asgi:application` with production settings, as `make bench` measures
    it: started through `scripts/with-jemalloc` as the Procfile starts it, unless `jemalloc=False`
    (pymalloc, for A/B runs), or through `launcher` instead (a counting tool: bench.instructions)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        workers: int = GATEWAY_WORKERS,
        app: str = "meshplatform.asgi:application",
        jemalloc: bool = True,
        source: Path = REPO_ROOT,
        lifespan: str = "on",
        launcher: list[str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.env = {**env, "MESH_JEMALLOC": "on" if jemalloc else "off"}
        self.source, self.lifespan = source, lifespan
        self.launcher = [str(WITH_JEMALLOC)] if launcher is None else launcher
        self.start_timeout_s = start_timeout_s
        self.workers = workers
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.gettempdir()) / f"mesh-bench-gateway-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = [
            *self.launcher, sys.executable, "-m", "uvicorn", self.app,
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--lifespan", self.lifespan,
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.source, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_until_healthy(self.url, self.process, self.log, timeout_s=self.start_timeout_s)
            # Workers answer /healthz as soon as one is up; give the second a moment to boot too.
            time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
            self.process.wait(5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class ResourceMeter:
    """CPU seconds and RSS summed over a process tree (uvicorn master plus workers)."""

    def __init__(self, root_pids: list[int]) -> None:
        self.processes: list[psutil.Process] = []
        for pid in root_pids:
            try:
                root = psutil.Process(pid)
                self.processes += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue

    @classmethod
    def for_listener(cls, url: str) -> ResourceMeter:
        """Find an already running server by the port it listens on (needs permission to see its sockets)."""
        port = urlsplit(url).port
        try:
            pids = {
                c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.pid
            }
        except psutil.AccessDenied:
            pids = set()
        return cls(sorted({_server_root(pid) for pid in pids}))

    @property
    def available(self) -> bool:
        return bool(self.processes)

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        return sum(self.rss_by_pid().values())

    def rss_by_pid(self) -> dict[int, int]:
        """Each process's RSS (the master's and each worker's), by pid; gone processes are left out."""
        sizes: dict[int, int] = {}
        for process in self.processes:
            try:
                sizes[process.pid] = process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return sizes

    def roles(self) -> dict[int, str]:
        """Each process's part: "master" (the root a meter was given), "worker", or "helper"
        (multiprocessing's resource tracker, which a multi-worker uvicorn starts)."""
        pids = {process.pid for process in self.processes}
        roles: dict[int, str] = {}
        for process in self.processes:
            try:
                parent, command = process.ppid(), " ".join(process.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if "resource_tracker" in command:
                roles[process.pid] = "helper"
            elif parent in pids or len(pids) == 1:
                roles[process.pid] = "worker"  # a single-process server is its own worker
            else:
                roles[process.pid] = "master"
        return roles

    def allocator(self) -> str:
        """ "jemalloc" when every metered worker has it mapped, else "pymalloc" (what the workers run)."""
        roles = self.roles()
        workers = [p for p in self.processes if roles.get(p.pid) == "worker"] or self.processes
        try:
            mapped = all(
                any("libjemalloc" in m.path for m in process.memory_maps(grouped=True)) for process in workers
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return "unknown"
        return "jemalloc" if mapped and workers else "pymalloc"


SERVER_NAMES = ("uvicorn", "gunicorn", "hypercorn", "daphne", "granian")


def _server_root(pid: int) -> int:
    """Workers share their master's socket: climb to the topmost process that is the ASGI server."""
    root = pid
    try:
        for ancestor in psutil.Process(pid).parents():
            if any(name in " ".join(ancestor.cmdline()) for name in SERVER_NAMES):
                root = ancestor.pid
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return root


class PeakRss:
    """Samples a meter's RSS (the total, and each process's) in a background thread while a
    measurement runs."""

    def __init__(self, meter: ResourceMeter, interval_s: float = 0.2) -> None:
        self.meter = meter
        self.interval_s = interval_s
        self.peak = 0
        self.peak_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Self:
        self._read()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._read()

    def _read(self) -> None:
        sizes = self.meter.rss_by_pid()
        self.peak = max(self.peak, sum(sizes.values()))
        for pid, size in sizes.items():
            self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), size)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read()

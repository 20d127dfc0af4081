"""`GatewayServer`: the real gateway (uvicorn, N workers) in a subprocess, for HTTP-level tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from simulator.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


class GatewayServer:
    """Runs `uvicorn meshplatform.asgi:application` as production does, against the test database.
    Each server has its own Prometheus multiprocess directory (its /metrics counts only its own
    requests) and its log file is listed in `log_files` (the suite scans them for secrets)."""

    log_files: list[Path] = []  # every server of the session, appended as created

    def __init__(self, *, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.workers = workers
        self.env = env
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)  # noqa: SIM115
        GatewayServer.log_files.append(Path(self._log.name))
        self.metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "meshplatform.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "on",
            # A worker that SIGHUP brings up may take a while to import on a loaded host.
            "--timeout-worker-healthcheck",
            "30",
        ]
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir,
            # No load balancer to warn and nothing to wait for at a test's end (tests of the drain
            # set their own).
            "MESH_DRAIN_NOTICE_S": "0",
            "MESH_DRAIN_TIMEOUT_S": "5",
            **self.env,
        }
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not start within {START_TIMEOUT_S}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes serving now (the master's spawned children), oldest first:
        the order a SIGHUP to the master replaces them in."""
        assert self.process is not None
        workers: list[tuple[float, int]] = []
        for child in psutil.Process(self.process.pid).children():
            try:
                # uvicorn spawns its workers with multiprocessing (children also include its
                # resource tracker); a retired worker not yet reaped is a zombie, not serving.
                if "spawn_main" in " ".join(child.cmdline()):
                    workers.append((child.create_time(), child.pid))
            except (psutil.ZombieProcess, psutil.NoSuchProcess):
                continue
        return [pid for _, pid in sorted(workers)]

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

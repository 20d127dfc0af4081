"""`CeleryWorker`: a real `celery -A meshplatform worker` (optionally with beat) in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


class CeleryWorker:
    """One worker process (solo pool: tasks run in the process a test may SIGKILL) on the test broker.

    `env` is what `tests.conftest.gateway_env` gives (test database, Redis); the broker defaults
    to REDIS_URL, so tasks a test sends with `.delay()` reach this worker. With `beat=True`
    the worker also runs the beat schedule from settings (embedded, `--beat`).
    """

    def __init__(self, *, env: dict[str, str], beat: bool = False, pool: str = "solo") -> None:
        self.env = env
        self.beat = beat
        self.pool = pool  # "prefork" (with one child) for what production's Procfile runs
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="celery-worker-")
        self.log_path = Path(self._dir) / "worker.log"

    def start(self) -> CeleryWorker:
        command = [
            sys.executable, "-m", "celery", "-A", "meshplatform", "worker",
            "--pool", self.pool, "--concurrency", "1", "--loglevel", "INFO",
            "--hostname", f"test-{os.getpid()}-{id(self)}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if self.beat:
            command += ["--beat", "--schedule", str(Path(self._dir) / "beat-schedule")]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes beat down with it
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.output()}")
            if " ready." in self.output():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"celery worker not ready within {START_TIMEOUT_S}s:\n{self.output()}")

    def stop(self) -> None:
        """Warm shutdown: the task in progress finishes first."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the worker (and its beat): what an OOM killer or a lost host does, mid-task."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""`SimulatorServer`: the simulator in a subprocess on a free loopback port, for tests and the benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimulatorServer:
    """A simulator subprocess; use as a context manager (or call `start()`/`stop()`).

    Keep `workers=1` whenever scripting or the request log matters: that state lives in one process.
    """

    def __init__(self, *, port: int | None = None, workers: int = 1) -> None:
        self.port = port or free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.openai_base_url = f"{self.base_url}/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - output() reads it after the process exits
        self._client = httpx.Client(base_url=self.base_url, timeout=10.0)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        command = [
            sys.executable,
            "-m",
            "simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self._client.get("/_sim/health", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"simulator did not answer /_sim/health within {START_TIMEOUT_S}s:\n{self.output()}"
        )

    def stop(self) -> None:
        self._client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)

    def output(self) -> str:
        """What the simulator printed (warnings and errors only), for failure messages."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def reset(self) -> None:
        """Forget queued rules and logged requests; call between tests."""
        self._client.post("/_sim/reset").raise_for_status()

    def script(self, **fault: Any) -> None:
        """Queue a fault: `script(model="gpt-4o", times=1, status=500)`; keys as the body's `mock` field."""
        response = self._client.post("/_sim/script", json=fault)
        if response.status_code != 200:
            raise ValueError(response.json().get("error", response.text))

    def requests(self) -> list[dict[str, Any]]:
        """The last requests received, oldest first: `[{"path", "headers", "body", ...}]`."""
        response = self._client.get("/_sim/requests")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

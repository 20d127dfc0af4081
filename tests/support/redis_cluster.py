"""`RedisClusterServers`: a real 3-primary Redis Cluster on loopback (redis-server processes in a
temporary directory, joined by `redis-cli --cluster create`), for the cluster-mode tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

START_TIMEOUT_S = 20.0
BUS_OFFSET = 10_000  # each node's cluster bus listens on its port + 10000


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """Free loopback ports whose cluster bus ports (+10000, so below 65536) are free as well."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20_000, 50_000)
        if port not in chosen and _port_free(port) and _port_free(port + BUS_OFFSET):
            chosen.append(port)
    return chosen


class RedisClusterServers:
    """Three primaries, no replicas; `url` names the first (the others are discovered from it)."""

    def __init__(self, primaries: int = 3) -> None:
        self.ports = cluster_ports(primaries)
        self.directory = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def command(self, port: int, *args: Any) -> Any:
        """One command on one node, as is (CLUSTER …, MIGRATE, CLIENT PAUSE)."""
        return self.node(port).execute_command(*args)  # type: ignore[no-untyped-call]

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (no redirections followed)."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            workdir = self.directory / str(port)
            workdir.mkdir()
            command = [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            log = (workdir / "redis.log").open("wb")
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        for port in self.ports:
            self._wait(lambda port=port: bool(self.node(port).ping()), f"redis-server on {port}")
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S,
        )
        for port in self.ports:
            self._wait(lambda port=port: self._cluster_ok(port), f"cluster_state:ok on {port}")
        return self

    def _cluster_ok(self, port: int) -> bool:
        info = self.command(port, "CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def _wait(self, probe: object, what: str) -> None:
        assert callable(probe)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if probe():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{what} not ready within {START_TIMEOUT_S}s")

    def node_id(self, port: int) -> str:
        raw = self.command(port, "CLUSTER", "MYID")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def owner(self, slot: int) -> int:
        """The port of the primary serving `slot`."""
        for start, end, primary, *_ in self.command(self.ports[0], "CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return int(primary[1])
        raise LookupError(slot)

    def slot_move(self, slot: int, to_port: int) -> None:
        """Reshard one slot (its keys migrated) to another primary, as `redis-cli --cluster reshard` does."""
        from_port = self.owner(slot)
        self.command(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(from_port))
        self.command(from_port, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(to_port))
        while keys := self.command(from_port, "CLUSTER", "GETKEYSINSLOT", slot, 100):
            self.command(from_port, "MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
        for port in self.ports:
            self.command(port, "CLUSTER", "SETSLOT", slot, "NODE", self.node_id(to_port))

    def slot_migrating(self, slot: int, to_port: int) -> None:
        """Leave `slot` half-way through a migration (MIGRATING on its owner, IMPORTING on `to_port`)."""
        from_port = self.owner(slot)
        self.command(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(from_port))
        self.command(from_port, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(to_port))

    def flushall(self) -> None:
        for port in self.ports:
            self.node(port).flushall()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisClusterServers:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""`python -m bench.instructions`: the gateway's instructions per request, counted by valgrind's
callgrind (or its system calls, counted by strace: `--count syscalls`).

CPU seconds on a shared host swing ±40 % between runs, which hides any difference smaller than
that (a hot-path change, the metrics' cost). An instruction count does not swing: the same binary
given the same requests executes nearly the same instructions whatever else the machine does. So
one gateway worker (production settings, as `make bench` runs it, without jemalloc: valgrind
replaces the allocator) runs under callgrind with counting off while it starts and warms up, and
on for exactly N requests of each cell. Compare two configurations (`--metrics on|off`) or two
checkouts (`--source DIR`, e.g. a worktree of an earlier commit) by running this twice.

What it does not say: time. Instructions are not equal in cost (a cache miss, a syscall's kernel
side is not counted at all), so the figure is for differences between runs of this tool, turned
into time with the CPU milliseconds per request that `make bench` measures for the same cell.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.runner import request_body
from bench.services import (
    REPO_ROOT,
    BenchSetupError,
    Gateway,
    gateway_env,
    provision_gateway,
    source_database,
)
from simulator.server import SimulatorServer

STREAM_CHUNKS = 20
START_TIMEOUT_S = 600.0  # Django's imports under valgrind take a minute or more
CONTROL_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    mode: str  # "json" or "stream"
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.mode} c={self.concurrency}"


@dataclasses.dataclass(frozen=True, slots=True)
class CellCount:
    cell: Cell
    requests: int
    count: int

    @property
    def per_request(self) -> float:
        return self.count / self.requests


def parse_cells(text: str) -> list[Cell]:
    cells = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        mode, _, concurrency = item.partition(":")
        if mode not in ("json", "stream") or not concurrency.isdigit() or int(concurrency) < 1:
            raise argparse.ArgumentTypeError(f"cell {item!r}: expected json:N or stream:N")
        cells.append(Cell(mode, int(concurrency)))
    return cells


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--metrics", choices=["on", "off"], default="on", help="Prometheus samples (as make bench)"
    )
    parser.add_argument(
        "--source", type=Path, default=REPO_ROOT, help="the checkout whose gateway runs (default: this one)"
    )
    parser.add_argument(
        "--pythonpath", default="", help="extra import path for --source (packages this venv lacks)"
    )
    parser.add_argument(
        "--lifespan",
        choices=["on", "auto"],
        default="on",
        help="uvicorn's --lifespan (auto: a checkout without one)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests counted per cell")
    parser.add_argument("--warmup", type=int, default=60, help="uncounted requests of each mode first")
    parser.add_argument("--repeat", type=int, default=2, help="count each cell this many times")
    parser.add_argument(
        "--cells",
        type=parse_cells,
        default=parse_cells("json:1,stream:1,json:16,stream:16"),
        help="mode:concurrency,…",
    )
    parser.add_argument("--model", default="openai/gpt-4o")
    parser.add_argument("--output", type=Path, help="write the counts as JSON here")
    parser.add_argument("--keep", type=Path, help="keep each cell's callgrind dump (or strace summary) here")
    parser.add_argument(
        "--count",
        choices=["instructions", "syscalls"],
        default="instructions",
        help="what is counted: user-space instructions (callgrind) or system calls (strace)",
    )
    return parser.parse_args(argv)


class CountedGateway(Gateway):
    """One uvicorn worker (production settings) started under a counting tool, whose work is
    counted only between `count_on()` and `count_off()`: the subclass says by what."""

    what = ""

    def __init__(
        self, env: dict[str, str], source: Path, out_dir: Path, *, lifespan: str, keep: Path | None
    ) -> None:
        self.out_dir, self.keep = out_dir, keep
        super().__init__(
            env,
            workers=1,
            jemalloc=False,  # under valgrind it would replace valgrind's own allocator
            source=source,
            lifespan=lifespan,
            launcher=self.wrapper(),
            start_timeout_s=START_TIMEOUT_S,
        )

    def wrapper(self) -> list[str]:
        """What the worker is started under."""
        return []

    def count_on(self) -> None:
        raise NotImplementedError

    def count_off(self, name: str) -> int:
        """Stop counting; the count since `count_on`. `name` names the cell's kept raw output."""
        raise NotImplementedError

    def _kept(self, output: Path, name: str) -> None:
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(output, self.keep / f"{self.what}.{name}")


class Callgrind(CountedGateway):
    """Instructions executed in user space (the worker runs under valgrind, ~50× slower)."""

    what = "callgrind"

    def wrapper(self) -> list[str]:
        return [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
            f"--callgrind-out-file={self.out_dir / 'callgrind.out'}",
        ]  # fmt: skip

    def _control(self, *args: str) -> None:
        assert self.process is not None
        result = subprocess.run(
            ["callgrind_control", *args, str(self.process.pid)],
            capture_output=True,
            text=True,
            timeout=CONTROL_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise BenchSetupError(f"callgrind_control {' '.join(args)}: {result.stdout}{result.stderr}")

    def count_on(self) -> None:
        self._control("--instr=on")

    def count_off(self, name: str) -> int:
        self._control("--instr=off")
        before = set(self.out_dir.glob("callgrind.out*"))
        self._control("--dump")  # a dump zeroes the counters
        dumps = sorted(set(self.out_dir.glob("callgrind.out*")) - before, key=lambda p: p.stat().st_mtime)
        if not dumps:
            raise BenchSetupError("callgrind wrote no dump")
        total = _totals(dumps[-1])
        self._kept(dumps[-1], name)
        for dump in dumps:
            dump.unlink()
        return total


class Strace(CountedGateway):
    """System calls, which callgrind does not see (their kernel side is most of a round trip's
    cost): strace attached to every thread of the worker while counting."""

    what = "strace"
    tracer: subprocess.Popen[bytes] | None = None

    def count_on(self) -> None:
        assert self.process is not None
        threads = ",".join(path.name for path in Path(f"/proc/{self.process.pid}/task").iterdir())
        self.summary = self.out_dir / "strace.summary"
        self.tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-o", str(self.summary), "-p", threads],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + CONTROL_TIMEOUT_S
        while not all(_traced(self.process.pid, thread) for thread in threads.split(",")):
            if self.tracer.poll() is not None or time.monotonic() > deadline:
                raise BenchSetupError(f"strace could not attach (exit {self.tracer.poll()})")
            time.sleep(0.05)

    def count_off(self, name: str) -> int:
        assert self.tracer is not None
        self.tracer.send_signal(signal.SIGINT)
        self.tracer.wait(CONTROL_TIMEOUT_S)
        self._kept(self.summary, name)
        for line in self.summary.read_text().splitlines():
            fields = line.split()
            if fields and fields[-1] == "total":  # % time, seconds, usecs/call, calls, [errors], total
                return int(fields[3])
        raise BenchSetupError(f"no total in strace's summary:\n{self.summary.read_text()[-2000:]}")


def _traced(pid: int, thread: str) -> bool:
    """Whether a tracer is attached to the thread (or it is gone)."""
    try:
        status = Path(f"/proc/{pid}/task/{thread}/status").read_text()
    except FileNotFoundError:
        return True
    return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in status.splitlines())


def _totals(dump: Path) -> int:
    """The dump's event total, its "totals:" line (Ir is the only event). Its "summary:" line is not
    it: callgrind 3.19 writes 0 there for a dump taken with counting switched off."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise BenchSetupError(f"{dump}: no totals line")


async def _requests(url: str, key: str, model: str, cell: Cell, count: int) -> None:
    stream = cell.mode == "stream"
    body = request_body(model, stream=stream, mock={"chunks": STREAM_CHUNKS} if stream else {})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=cell.concurrency, max_keepalive_connections=cell.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300.0, limits=limits) as client:

        async def one_client(share: int) -> None:
            for _ in range(share):
                response = await client.post("/v1/chat/completions", content=body, headers=headers)
                if response.status_code != 200 or (stream and b"[DONE]" not in response.content):
                    raise BenchSetupError(f"{cell.name}: HTTP {response.status_code}: {response.text[:500]}")

        shares = [count // cell.concurrency + (i < count % cell.concurrency) for i in range(cell.concurrency)]
        await asyncio.gather(*(one_client(share) for share in shares if share))


def measure(args: argparse.Namespace) -> list[CellCount]:
    tools = ("valgrind", "callgrind_control") if args.count == "instructions" else ("strace",)
    for tool in tools:
        if shutil.which(tool) is None:
            raise BenchSetupError(f"{tool} is not installed (Debian: apt-get install {tools[0]})")
    source: Path = args.source.resolve()
    os.environ["MESH_SIM_STREAM_CHUNKS"] = str(STREAM_CHUNKS)
    with (
        SimulatorServer(workers=2) as simulator,
        tempfile.TemporaryDirectory(prefix="mesh-callgrind-") as tmp,
    ):
        env = gateway_env(simulator.openai_base_url, metrics=args.metrics == "on")
        url, database = source_database(source)
        env["DATABASE_URL"] = url
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), args.pythonpath]))
        print(f"provisioning {database} from {source}…", flush=True)
        key = provision_gateway(env, root=source, database=database)
        counter = Callgrind if args.count == "instructions" else Strace
        gateway = counter(env, source, Path(tmp), lifespan=args.lifespan, keep=args.keep)
        print(f"starting one gateway worker, counted by {gateway.what} (a minute or two)…", flush=True)
        with gateway:
            for mode in sorted({cell.mode for cell in args.cells}):
                asyncio.run(_requests(gateway.url, key, args.model, Cell(mode, 4), args.warmup))
            counts = []
            for round_ in range(args.repeat):
                for cell in args.cells:
                    gateway.count_on()
                    asyncio.run(_requests(gateway.url, key, args.model, cell, args.requests))
                    dump_name = f"{cell.mode}-c{cell.concurrency}-{round_ + 1}"
                    count = CellCount(cell, args.requests, gateway.count_off(dump_name))
                    print(f"  round {round_ + 1} {cell.name}: {_shown(args, count)}", flush=True)
                    counts.append(count)
    return counts


def _shown(args: argparse.Namespace, count: CellCount) -> str:
    if args.count == "instructions":
        return f"{count.per_request / 1e6:.3f}"
    return f"{count.per_request:.1f}"


def markdown(args: argparse.Namespace, counts: list[CellCount]) -> str:
    unit = "instructions per request (M)" if args.count == "instructions" else "system calls per request"
    lines = [
        f"source {args.source.resolve()}, metrics {args.metrics}, {args.requests} requests per cell",
        "",
        f"| cell | {unit}, each round |",
        "|---|---|",
    ]
    for cell in args.cells:
        rounds = [_shown(args, c) for c in counts if c.cell == cell]
        lines.append(f"| {cell.name} | {' / '.join(rounds)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        counts = measure(args)
    except BenchSetupError as error:
        print(f"bench.instructions: cannot run: {error}", file=sys.stderr)
        return 1
    print()
    print(markdown(args, counts))
    if args.output is not None:
        rows = [{"cell": c.cell.name, "requests": c.requests, "count": c.count} for c in counts]
        meta = {"source": str(args.source.resolve()), "metrics": args.metrics, "counted": args.count}
        args.output.write_bytes(orjson.dumps({**meta, "counts": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m simulator`: serve the simulator with uvicorn on loopback."""

from __future__ import annotations

import argparse

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="Fake upstream LLM providers.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="more than 1 only for benchmarks: state is per worker",
    )
    args = parser.parse_args(argv)
    uvicorn.run(
        "simulator.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        # Benchmarks open thousands of streams at once; uvicorn's default backlog (2048) would refuse some.
        backlog=8192,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()

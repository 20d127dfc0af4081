"""schemathesis against the served OpenAPI document, every operation, every check, bounded
examples: no server error, and every response matches the document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.support.gateway import REPO_ROOT

MAX_EXAMPLES = 25
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 16


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    api_url: str, acme_key: CreatedKey, simulator: SimulatorServer, tmp_path: Path
) -> None:
    report = tmp_path / "events.ndjson"
    # The served document, fetched with patience (drf-spectacular builds it in seconds on a busy
    # host; schemathesis' own loader gives up after 10 s).
    served = httpx.get(f"{api_url}/openapi.json", timeout=120).raise_for_status().json()
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(served))
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG),
        "run", str(document), "--url", api_url.removesuffix("/v1"),
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",
        "--header", f"Authorization: Bearer {acme_key.plaintext}",
        "--request-timeout", "30",
        "--workers", "1",  # CPython 3.11's ast.parse fails in hypothesis' threads (SystemError)
        # A free-form path parameter that may hold `/` (GET /v1/models/{model}) makes hypothesis drop
        # most generated values as not URL-safe; the operation is still exercised with what remains.
        "--suppress-health-check", "filter_too_much",
        "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    statuses = _response_statuses(report)
    # 504 is what a request asks for with a `timeout` shorter than the upstream's answer (schemathesis
    # sends 5e-324 s); schemathesis.toml allows it there, and only there.
    server_errors = [s for s in statuses if s >= 500 and s != 504]
    summary = (
        f"{len(statuses)} requests, {len(server_errors)} x 5xx (504 for tiny timeouts: "
        f"{statuses.count(504)})\n{result.stdout[-6000:]}"
    )
    print(summary)
    assert len(statuses) > 200, summary
    assert server_errors == [], summary
    assert result.returncode == 0, summary
    assert simulator.requests() == [] or all(
        r["path"].endswith(("/chat/completions", "/responses", "/embeddings", "/images/generations"))
        for r in simulator.requests()
    )


def _response_statuses(report: Path) -> list[int]:
    """The status of every response schemathesis recorded."""
    statuses: list[int] = []
    if not report.exists():
        return statuses
    for line in report.read_text().splitlines():
        _collect(json.loads(line), statuses)
    return statuses


def _collect(node: object, statuses: list[int]) -> None:
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            statuses.append(response["status_code"])
        for value in node.values():
            _collect(value, statuses)
    elif isinstance(node, list):
        for value in node:
            _collect(value, statuses)

"""Golden transcripts: each provider's documented answers (JSON bodies, SSE streams, error bodies)
replayed by the simulator byte for byte, through the gateway, must come out as exactly the OpenAI
JSON or chunk sequence recorded beside them (after normalising `created`, the only clock value).

Streams are re-cut into 5-byte reads, so events, JSON tokens and tool arguments arrive split.
`MESH_GOLDEN_RECORD=1` rewrites the expected side (review the diff before committing it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from routing.catalog_seed import SEED_MODELS
from simulator.server import SimulatorServer

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(GOLDEN.glob("*/*.json"))
RECORD = os.environ.get("MESH_GOLDEN_RECORD") == "1"
UPSTREAM_NAMES = {seed.model_id: seed.model_id.partition("/")[2] for seed in SEED_MODELS}


def normalised(value: Any) -> Any:
    """`created` is the gateway's clock (Anthropic and Gemini answers carry none): set to 0."""
    if isinstance(value, dict):
        return {k: 0 if k == "created" else normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def replay(http: httpx.Client, simulator: SimulatorServer, case: dict[str, Any]) -> Any:
    upstream = case["upstream"]
    raw = upstream if isinstance(upstream, str) else orjson.dumps(upstream).decode()
    status = case.get("upstream_status", 200)
    fault: dict[str, Any] = {"error_body": raw, "status": status} if status >= 400 else {"raw_body": raw}
    if case["stream"]:
        fault["split_bytes"] = 5
    simulator.script(model=UPSTREAM_NAMES[case["model"]], times=None, **fault)
    body = {"model": case["model"], "messages": [{"role": "user", "content": "hi"}], **case["request"]}
    if case["stream"]:
        body["stream"] = True
    response = http.post("/chat/completions", json=body)
    if response.status_code != 200:
        headers = {name: response.headers[name] for name in ("retry-after",) if name in response.headers}
        return {"status": response.status_code, "headers": headers, "body": response.json()["error"]}
    if not case["stream"]:
        return normalised(response.json())
    events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    return [event if event == "[DONE]" else normalised(orjson.loads(event)) for event in events]


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden_transcript(http: httpx.Client, simulator: SimulatorServer, path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    actual = replay(http, simulator, case)
    if RECORD:
        case["expected"] = actual
        path.write_text(orjson.dumps(case, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    assert case["expected"] is not None, f"{path.name}: no expected output recorded"
    assert orjson.dumps(actual, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        case["expected"], option=orjson.OPT_SORT_KEYS
    )

"""Every Python example of sdk/python/README.md runs as written against the live gateway (with
MESHAPI_TOKEN and MESHAPI_BASE_URL set, as the README tells its reader to do)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import gateway_env
from tests.support.celery_worker import CeleryWorker
from tests.support.seeds import python_blocks

README = Path(__file__).resolve().parents[2] / "sdk" / "python" / "README.md"
JOB_APIS = re.compile(r"client\.(jobs|files|batches)\.")


def readme_examples() -> list[pytest.ParameterSet]:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    return [pytest.param(block.code, id=f"example-{index}") for index, block in enumerate(blocks)]


def test_the_readme_has_an_example_per_area() -> None:
    code = "\n".join(block.values[0] for block in readme_examples())  # type: ignore[misc]
    for call in (
        "chat.completions.create(", "chat.completions.stream(", "final_completion()", "models.list(",
        "templates.create(", "templates.update(", "templates.versions(", "templates.render(",
        "templates.restore(", "templates.delete(", "usage.query(", "jobs.create(", "jobs.wait(",
        "responses.create(", "responses.stream(", "compare.create(", "compare.stream(",
        "files.create(", "batches.create(", "except ValidationError", "embeddings.create(",
        "images.generate(",
    ):  # fmt: skip
        assert call in code, f"the SDK README has no example calling {call}"


@pytest.mark.parametrize("code", readme_examples())
def test_readme_example_runs(
    code: str,
    mesh_url: str,
    acme_key: CreatedKey,
    simulator: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if JOB_APIS.search(code):
        worker = CeleryWorker(env=gateway_env(simulator), beat=True).start()  # jobs and batches run there
        request.addfinalizer(worker.kill)
    monkeypatch.setenv("MESHAPI_TOKEN", acme_key.plaintext)
    monkeypatch.setenv("MESHAPI_BASE_URL", mesh_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    assert out.getvalue().strip(), "the example printed nothing"

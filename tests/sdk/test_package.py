"""The package itself: mypy-strict clean (and so are the seed page's examples), installable with
py.typed, and independent of the server's code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support.seeds import python_blocks, seed_page

REPO_ROOT = Path(__file__).resolve().parents[2]
SDK_ROOT = REPO_ROOT / "sdk" / "python"
SERVER_PACKAGES = {
    "django",
    "rest_framework",
    "keys",
    "routing",
    "usage",
    "templates_app",
    "meshplatform",
    "simulator",
}


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_the_package_is_mypy_strict_clean() -> None:
    result = mypy("--config-file", "pyproject.toml", cwd=SDK_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "strict = true" in (SDK_ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_the_seed_examples_type_check_under_strict_mypy(tmp_path: Path) -> None:
    page = seed_page("002_")
    if page is None:
        pytest.skip("seed 002 not found beside the repository (../shared/seeds/)")
    preamble = "from meshapi import MeshAPI, AsyncMeshAPI, ChatCompletionParams, ChatMessage\n"
    for index, block in enumerate(python_blocks(page)):
        code = block.code
        if "async for" in code and "async def" not in code:  # a fragment run inside a coroutine
            body = "".join(f"    {line}\n" for line in code.splitlines())
            signature = "async def fragment(client: AsyncMeshAPI, params: ChatCompletionParams) -> None:"
            code = f"{preamble}{signature}\n{body}"
        elif "client = " not in code and "client" in code:  # uses the first example's client
            code = f"{preamble}client = MeshAPI(token='rsk_x')\n{code}"
        (tmp_path / f"example_{index}.py").write_text(code)
    # Strict, except that the page's own `async def main():` carries no annotations (its body is checked).
    flags = ["--strict", "--allow-untyped-defs", "--allow-untyped-calls", "--check-untyped-defs"]
    result = mypy(*flags, "--python-version", "3.11", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_meshapi_imports_no_server_code() -> None:
    probe = "import sys, meshapi; print(sorted({m.split('.')[0] for m in sys.modules}))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=SDK_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(eval(result.stdout))
    assert not loaded & SERVER_PACKAGES
    declared = tomllib.loads((SDK_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(d.split(">")[0].split("=")[0] for d in declared) == [
        "httpx",
        "httpx-sse",
        "pydantic",
        "tenacity",
    ]


@pytest.mark.slow
def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(SDK_ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("meshapi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"meshapi/__init__.py", "meshapi/py.typed", "meshapi/types/chat.py"} <= names
    assert not any(name.startswith(tuple(f"{p}/" for p in SERVER_PACKAGES)) for name in names)

"""`scripts/with-jemalloc` (the Procfile's `web`) runs its command on jemalloc with Python allocating
through it, and the idle release then purges jemalloc's arenas; switched off or without the
library, the command still runs, on pymalloc, and the release is glibc's malloc_trim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway import REPO_ROOT

WITH_JEMALLOC = REPO_ROOT / "scripts" / "with-jemalloc"
JEMALLOC_INSTALLED = any(Path("/usr/lib").glob("*-linux-gnu/libjemalloc.so.2"))
# What a worker reports at start-up, and what its idle release returns (jemalloc's purge: 0 on
# success; malloc_trim: 1 if it released memory, else 0).
PROBE = (
    "import django; django.setup(); "
    "from meshplatform.memory import allocator_name, allocator_release; "
    "release = allocator_release(); "
    "print(allocator_name(), '|', release() if release else None)"
)


def _probe(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WITH_JEMALLOC), sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "meshplatform.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.skipif(not JEMALLOC_INSTALLED, reason="needs libjemalloc2 (apt-get)")
def test_the_launcher_runs_python_on_jemalloc_and_the_idle_release_purges_it() -> None:
    result = _probe()

    assert result.stdout.strip() == "jemalloc | 0"
    assert result.stderr == ""


def test_switched_off_the_launcher_leaves_pymalloc_and_glibc_trim() -> None:
    name, released = _probe(MESH_JEMALLOC="off").stdout.strip().split(" | ")

    assert name == "libc malloc + pymalloc"
    assert released in ("0", "1")


def test_without_the_library_the_command_still_runs_and_says_why() -> None:
    result = _probe(MESH_JEMALLOC_LIB="/nonexistent/libjemalloc.so.2")

    assert result.stdout.strip().split(" | ")[0] == "libc malloc + pymalloc"
    assert "libjemalloc.so.2 not found" in result.stderr

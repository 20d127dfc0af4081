"""The seed pages (`../shared/seeds/` beside the repository), read at run time, and their code blocks."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS_ENV = "MESH_SEEDS_DIR"
_FENCE = re.compile(r"^```python(?P<label>[^\n]*)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CodeBlock:
    label: str
    code: str


def _checkout_roots() -> list[Path]:
    """This checkout, and the main checkout when this one is a git worktree (`git worktree add`)."""
    roots = [REPO_ROOT]
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return roots
    if common:
        roots.append(Path(common).parent)
    return roots


def seeds_dir() -> Path | None:
    """`$MESH_SEEDS_DIR`, else `../shared/seeds` next to the checkout (CI puts `shared/` there)."""
    if os.environ.get(SEEDS_ENV):
        path = Path(os.environ[SEEDS_ENV])
        return path if path.is_dir() else None
    for root in _checkout_roots():
        path = root.parent / "shared" / "seeds"
        if path.is_dir():
            return path
    return None


def seed_page(prefix: str) -> str | None:
    """The text of the seed page whose file name starts with `prefix` (e.g. "002_"), if present."""
    folder = seeds_dir()
    if folder is None:
        return None
    pages = sorted(folder.glob(f"{prefix}*.txt"))
    return pages[0].read_text(encoding="utf-8") if pages else None


def python_blocks(page: str) -> list[CodeBlock]:
    """Every ```python fenced block, with the label after the fence (e.g. "Python (SDK)")."""
    return [CodeBlock(m["label"].strip(), m["code"]) for m in _FENCE.finditer(page)]


def numbered_blocks(page: str) -> list[list[str]]:
    """The code of a page as a browser renders it (seed 004): each block a run of lines prefixed
    1, 2, 3…, with the line numbers removed. That rendering loses indentation, so its lines are
    given stripped (comparable, not runnable)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in page.splitlines():
        expected = str(len(current) + 1) if current is not None else "1"
        if line.startswith(expected) and (current is not None or not line[1:2].isdigit()):
            if current is None:
                current = []
                blocks.append(current)
            current.append(line[len(expected) :].strip())
        else:
            current = None
    return blocks

"""The suite's log secret scan: every test's captured logs and stderr, and whatever the gateway
subprocesses logged meanwhile, must hold no API key, Authorization value or provider key."""

from __future__ import annotations

import re
from pathlib import Path

SECRET_PATTERNS = {
    "API key": re.compile(r"rsk_[0-9A-Za-z]{20,}"),
    "Authorization value": re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{6,}"),
    "provider key": re.compile(r"sk-(?:ant-)?sim[\w-]*"),
}
# Report sections that are log output (print()ed stdout is a command's own output, not a log).
LOG_SECTIONS = ("Captured log", "Captured stderr")


def secrets_in(text: str) -> list[str]:
    """What in `text` looks like a secret, named by kind (the secret itself is cut short)."""
    found: list[str] = []
    for kind, pattern in SECRET_PATTERNS.items():
        found.extend(f"{kind}: {match.group(0)[:10]}…" for match in pattern.finditer(text))
    return found


class LogTail:
    """What log files gained since the last read (the gateway logs grow across tests)."""

    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}

    def new_text(self, paths: list[Path]) -> str:
        parts = []
        for path in paths:
            try:
                with path.open("rb") as file:
                    file.seek(self._offsets.get(path, 0))
                    data = file.read()
            except FileNotFoundError:
                continue
            self._offsets[path] = self._offsets.get(path, 0) + len(data)
            parts.append(data.decode(errors="replace"))
        return "\n".join(parts)

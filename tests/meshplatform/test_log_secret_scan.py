"""The suite's secret scan (tests/support/secret_scan.py) finds what it must and nothing else."""

from __future__ import annotations

from pathlib import Path

from tests.support.secret_scan import LogTail, secrets_in


def test_keys_authorization_values_and_provider_keys_are_found() -> None:
    text = "\n".join(
        [
            "auth failed for rsk_01JD8ZQ7XK3M9V2N4P6R8T0W1Y",
            "headers: Authorization: Bearer abcdef123456",
            "upstream key sk-sim-openai and sk-ant-simulator",
        ]
    )
    kinds = sorted(leak.partition(":")[0] for leak in secrets_in(text))
    assert kinds == ["API key", "Authorization value", "provider key", "provider key"]


def test_what_the_access_line_holds_is_not_a_secret() -> None:
    line = '{"event":"request","key_prefix":"rsk_01JD8ZQ7","tenant":"acme","status":401}'
    hint = "Missing Authorization header; send 'Authorization: Bearer rsk_…'."
    assert secrets_in(line) == []
    assert secrets_in(hint) == []


def test_a_log_file_is_read_once_as_it_grows(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("first\n")
    tail = LogTail()
    assert tail.new_text([log]) == "first\n"
    with log.open("a") as file:
        file.write("second\n")
    assert tail.new_text([log]) == "second\n"
    assert tail.new_text([log, tmp_path / "missing.log"]) == ""

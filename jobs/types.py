"""Typed values the jobs app exchanges with the code that runs completions (routing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from keys.types import ResolvedKey
from usage.types import TokenUsage


@dataclass(frozen=True, slots=True)
class CompletionWork:
    """One completion to run off the request path: a job or a batch line.

    `body` is the request as the client sent it (Mesh fields such as template, variables and
    session_id included). `admitted` is true for a job: its submission already counted the rate
    limit and checked the caps, and holds its worst case under a hard cap as `request_id`.
    A batch line is not admitted: it is counted and checked when it runs.
    """

    key: ResolvedKey
    key_hash: str
    body: dict[str, Any]
    request_id: str
    admitted: bool
    default_session_id: str | None = None
    # The request's start (epoch s), fixed across runs: its usage event's created_at, so a run
    # again after a take-over lands on the row of the first (usage.ledger.LedgerEntry).
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class CompletionOutcome:
    """What a completion ended as: the HTTP status and body a synchronous client would have got."""

    status_code: int
    body: dict[str, Any]
    usage: TokenUsage = field(default_factory=TokenUsage)
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


# Runs one completion through the pipeline (injected by routing, which composes this app).
CompletionRunner = Callable[[CompletionWork], Awaitable[CompletionOutcome]]

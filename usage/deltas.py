"""The rollup delta journal's writes: what a batch of stored or rewritten events adds to each
session-grain rollup group, summed in Python and inserted in one statement (usage.store)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection

from usage.models import UsageRollupDelta

DELTAS = UsageRollupDelta._meta.db_table
# The event columns a delta is computed from, in EventMetrics' order after the day.
METRIC_COLUMNS = (
    "tenant_id", "api_key_id", "session_id", "model_served", "model_requested", "http_status",
    "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
)  # fmt: skip
_DELTA_COLUMNS = (
    "day", "tenant_id", "api_key_id", "session_id", "model", "requests", "errors",
    "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
)  # fmt: skip
# Bound parameters per statement stay under SQLite's limit (32,766) and PostgreSQL's (65,535).
MAX_ROWS_PER_INSERT = 1000
# The rollup's group: (day, tenant_id, api_key_id, session_id, model).
Group = tuple[date, int, int, str, str]


def _decimal(value: Any) -> Decimal:
    """The stored cost as a Decimal (SQLite's driver hands numeric columns back as floats)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class EventMetrics:
    """One stored event as the rollups see it: its group and what it adds."""

    day: date
    tenant_id: int
    api_key_id: int
    session_id: str
    model: str
    failed: bool
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: Decimal

    @classmethod
    def of_row(cls, day: date, row: Sequence[Any]) -> EventMetrics:
        """From the METRIC_COLUMNS values the database stored (its rounding of the cost included).
        The model is grouped as the rollups group it: served, else asked."""
        tenant_id, key_id, session_id, served, requested, status, prompt, completion, cached, cost = row
        return cls(
            day=day,
            tenant_id=tenant_id,
            api_key_id=key_id,
            session_id=session_id,
            model=served or requested,
            # An error is any event that did not end in a full answer, as usage.rollups counts them.
            failed=status >= 400,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            cost_usd=_decimal(cost),
        )

    @property
    def group(self) -> Group:
        return (self.day, self.tenant_id, self.api_key_id, self.session_id, self.model)


class DeltaBatch:
    """The deltas of one store transaction, summed per group."""

    def __init__(self) -> None:
        self._sums: dict[Group, list[Any]] = {}

    def add(self, event: EventMetrics, sign: int = 1) -> None:
        """Count `event` in its group (sign 1), or take it out (-1: a provisional row's old values)."""
        sums = self._sums.setdefault(event.group, [0, 0, 0, 0, 0, Decimal(0)])
        for index, value in enumerate(
            (1, int(event.failed), event.prompt_tokens, event.completion_tokens, event.cached_tokens)
        ):
            sums[index] += sign * value
        sums[5] += sign * event.cost_usd

    def rows(self) -> list[tuple[Any, ...]]:
        """One row per group that changes (a rewrite that changed nothing adds no row), sorted."""
        return [(*group, *sums) for group, sums in sorted(self._sums.items()) if any(sums)]

    def insert(self) -> int:
        """Write the batch's deltas in one INSERT; returns how many rows."""
        rows = self.rows()
        if not rows:
            return 0
        placeholders = "(" + ", ".join(["%s"] * len(_DELTA_COLUMNS)) + ")"
        with connection.cursor() as cursor:
            for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
                chunk = rows[start : start + MAX_ROWS_PER_INSERT]
                cursor.execute(
                    f"INSERT INTO {DELTAS} ({', '.join(_DELTA_COLUMNS)}) VALUES "
                    + ", ".join([placeholders] * len(chunk)),
                    [value for row in chunk for value in row],
                )
        return len(rows)

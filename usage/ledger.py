"""Where a request is billed: `LedgerEntry`, one per authenticated request, from admission to its
one final record.

Every outcome ends here: a JSON answer (`served`), a stream (`stream_opened`, then
`stream_finished`), a refusal, an upstream failure or a client that left (`failed`, or `guard()`
around the steps, which turns any exception into the right failure); a request cut by its worker's
drain timeout is settled as one whose client left, under its own code (`drain_timeout`). The
final record is the only place the spend counters are raised and the durable usage event written;
both happen at most once per entry (later calls are no-ops) and are shielded from the caller's
cancellation, so a client leaving at the wrong moment can neither skip nor repeat the billing.

Prices come from the model that served (`ServedBy.tariff`, the catalog entry); this module
computes every cost, so money is counted in one place.

A worker can die at any point, so nothing billed waits for the end alone: before its upstream call
the request notes itself in flight (`in_flight`, the entry beat bills if no final one comes), and
a stream bills its cost so far at its opening and at every progress report (`stream_progress`,
which also renews its spend hold), the final record adding only the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from keys.spend import SpendHold, spend_add, spend_progress
from keys.types import ResolvedKey
from meshplatform import tracing
from meshplatform.draining import requests_cut
from meshplatform.errors import GatewayError
from usage.observe import request_ended, request_observed, request_started, stream_started
from usage.recording import usage_open, usage_record, usage_record_queued, usage_record_written
from usage.types import DEFAULT_ENDPOINT, TokenUsage, UsageEventData

logger = logging.getLogger(__name__)
NO_TOKENS = TokenUsage()
DRAIN_TIMEOUT = "drain_timeout"
ZERO = Decimal(0)


def _left_outcome() -> tuple[int, str]:
    """Why a request ended before its answer: its client left (499), or its worker's drain timeout
    passed while it ran (503 `drain_timeout`, meshplatform/draining.py). Billed the same way."""
    return (503, DRAIN_TIMEOUT) if requests_cut() else (499, "client_disconnected")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one provider, listed in the request's ledger entry."""

    model: str
    provider: str
    status: int | None
    error_code: str | None
    duration_ms: int

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "provider": self.provider,
            "status": self.status,
            "error_code": self.error_code,
            "duration_ms": self.duration_ms,
        }


class Tariff(Protocol):
    """The prices of a model (the catalog entry): what `tokens` cost there."""

    def cost(self, tokens: TokenUsage) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class ServedBy:
    """The model and provider that answered, and its prices."""

    model: str
    provider: str
    tariff: Tariff


# The error code of an answer replayed for a retried Idempotency-Key (its status is the answer's).
REPLAYED = "idempotent_replay"


class BillingWitness:
    """Whether the request's ledger entries billed anything (or handed it to a job): what a caller
    must know, however the request ended, before letting a retry run it again (routing.idempotency)."""

    __slots__ = ("billed",)

    def __init__(self) -> None:
        self.billed = False


_witness: ContextVar[BillingWitness | None] = ContextVar("mesh_billing_witness", default=None)


@contextmanager
def billing_witnessed() -> Iterator[BillingWitness]:
    """Within the block, every ledger entry of this context reports its billing to the witness."""
    witness = BillingWitness()
    token = _witness.set(witness)
    try:
        yield witness
    finally:
        _witness.reset(token)


def _witness_billing() -> None:
    witness = _witness.get()
    if witness is not None:
        witness.billed = True


class LedgerEntry:
    """One request's ledger entry. What the request asked is noted as it becomes known; what it
    cost is decided by exactly one of `served`, `stream_finished` or `failed`."""

    __slots__ = (
        "_billed",
        "_clock",
        "_final",
        "_noted",
        "_served_by",
        "_streamed",
        "_ttft_ms",
        "attempts",
        "comparison_id",
        "endpoint",
        "hold",
        "images",
        "key",
        "model_requested",
        "request_id",
        "session_id",
        "started_at",
        "template_id",
        "template_version",
    )

    def __init__(
        self,
        *,
        key: ResolvedKey,
        request_id: str,
        session_id: str | None = None,
        started_at: float | None = None,
        comparison_id: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
    ) -> None:
        self.key = key
        self.endpoint = endpoint  # the API called (usage.types.UsageEventData.endpoint)
        self.images = 0  # images an image request produced (noted by `served`)
        self.request_id = request_id
        self.session_id = session_id
        self.comparison_id = comparison_id  # one model's run of a POST /v1/compare
        # When this run began (latency, time to first token)...
        self._clock = time.time()
        # ...and when the request did: its events' created_at (the ledger's partition key, half of
        # its unique (request_id, created_at)) and its spend period. One value per request id, so
        # every entry written for it, from the in-flight note to the final one, lands on the same
        # row; a job run again after a take-over passes its submission's (routing.background).
        self.started_at = self._clock if started_at is None else started_at
        self.model_requested = ""
        self.template_id: str | None = None
        self.template_version: int | None = None
        # The upstream tries, appended by the fallback loop as they happen.
        self.attempts: list[Attempt] = []
        self._served_by: ServedBy | None = None
        self._streamed = False
        self._ttft_ms: int | None = None
        self._final = False
        # What the spend caps hold for this request until it is billed (renewed while streaming).
        self.hold: SpendHold | None = None
        self._noted = False  # an in-flight note was written: the final record deletes it
        self._billed = ZERO  # what the stream's progress already billed
        request_started()

    # What the request asked (known step by step).

    def model_asked(self, model_id: str) -> None:
        self.model_requested = model_id

    def template_used(self, template_id: str, version: int) -> None:
        self.template_id, self.template_version = template_id, version

    def first_output(self) -> None:
        """The first content reached the client (time to first token)."""
        if self._ttft_ms is None:
            self._ttft_ms = self._elapsed_ms()

    @property
    def is_final(self) -> bool:
        return self._final

    # What it cost: exactly one of these decides.

    async def served(
        self, by: ServedBy, tokens: TokenUsage, *, estimated: bool = False, images: int = 0
    ) -> None:
        """A whole answer: bill its real cost and make the entry durable (before it is returned).
        `estimated`: the upstream reported no token count (Mesh estimated it); `images`: how many
        an image request produced (its tariff prices them)."""
        self._served_by, self.images = by, images
        cost = by.tariff.cost(tokens)
        await self._final_record(self._event(tokens=tokens, cost=cost, estimated=estimated))

    async def in_flight(self, by: ServedBy, *, prompt_tokens: int, finalise_after: float) -> None:
        """Before the upstream call: note what to bill should this process die before the final
        record (the prompt estimate at `by`'s prices, error `worker_lost`); beat bills such notes
        after `finalise_after` (usage.finalising). One pipelined round trip before the upstream call."""
        tokens = TokenUsage(prompt_tokens=prompt_tokens)
        cost = by.tariff.cost(tokens)
        lost = self._event(
            tokens=tokens, cost=cost, estimated=True, status=500, error_code="worker_lost", by=by
        )
        await usage_open(event=lost, finalise_after=finalise_after)
        self._noted = True

    async def stream_opened(self, by: ServedBy, *, prompt_tokens: int) -> None:
        """A stream's first chunk arrived: a provisional entry billing the prompt estimate (what
        finance sees if this process dies mid-stream; `stream_finished` replaces it)."""
        self._served_by, self._streamed = by, True
        stream_started()
        await self.stream_progress(TokenUsage(prompt_tokens=prompt_tokens))

    async def stream_progress(self, tokens: TokenUsage) -> None:
        """The stream's cost so far: the provisional entry brought up to date and the cost added
        since the last report billed (the hold renewed), side by side in one pipelined batch."""
        by = self._served_by
        assert by is not None, "stream_progress before stream_opened"
        cost = by.tariff.cost(tokens)
        progress = self._event(
            tokens=tokens, cost=cost, estimated=True, error_code="stream_unfinished", provisional=True
        )
        delta, self._billed = cost - self._billed, cost
        if cost:
            _witness_billing()
        opened, self._noted = self._noted, False  # the provisional entry now stands in for the note
        if delta or self.hold is not None:
            written = usage_record_queued(event=progress, opened=opened)  # rides the script's batch
            at, request_id = self.started_at, self.request_id
            await spend_progress(key=self.key, request_id=request_id, delta_usd=delta, at=at, hold=self.hold)
            await usage_record_written(written)
        else:
            await usage_record(event=progress, opened=opened)

    async def stream_finished(
        self, *, tokens: TokenUsage, estimated: bool, failure: GatewayError | None, cancelled: bool
    ) -> None:
        """The stream ended (to its end, with an in-stream failure, or the client left): bill what
        the upstream produced."""
        by = self._served_by
        assert by is not None, "stream_finished before stream_opened"
        status, code = (200, None) if failure is None else (failure.http_status, failure.code)
        if cancelled and failure is None:
            status, code = _left_outcome()
        event = self._event(
            tokens=tokens,
            cost=by.tariff.cost(tokens),
            estimated=estimated,
            status=status,
            error_code=code,
            cancelled=cancelled and failure is None,
        )
        await self._final_record(event)

    def handed_off(self) -> None:
        """The request goes on elsewhere under the same request id (an async job, billed by its
        worker run's own entry): this entry records nothing, and its guard does not either."""
        _witness_billing()  # the job will bill it
        if not self._final:
            request_ended(streamed=self._streamed)
        self._final = True

    async def replayed(self, *, status: int) -> None:
        """An earlier request's stored answer was sent again (a retry carrying its Idempotency-Key):
        recorded, billed nothing (the first request was billed)."""
        await self._final_record(self._event(tokens=NO_TOKENS, cost=ZERO, status=status, error_code=REPLAYED))

    async def failed(self, *, status: int, code: str, cancelled: bool = False) -> None:
        """No answer: record the refusal or failure (nothing billed beyond releasing a hold)."""
        event = self._event(tokens=NO_TOKENS, cost=ZERO, status=status, error_code=code, cancelled=cancelled)
        await self._final_record(event)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[LedgerEntry]:
        """Around a request's steps: whatever escapes them is recorded as its failure (a
        GatewayError with its status, a cancellation as the client leaving, anything else as our
        500), and a block that ends without deciding the entry is a bug recorded as a 500."""
        try:
            yield self
        except GatewayError as error:
            await self.failed(status=error.http_status, code=error.code)
            raise
        except asyncio.CancelledError:
            status, code = _left_outcome()
            await self.failed(status=status, code=code, cancelled=True)
            raise
        except Exception:
            await self.failed(status=500, code="internal_error")
            raise
        if not self._final and not self._streamed:
            logger.error("request %s ended without a ledger outcome; recorded as a 500", self.request_id)
            await self.failed(status=500, code="internal_error")

    # The one write.

    async def _final_record(self, event: UsageEventData) -> None:
        """Raise the spend counters and make the event durable, once. Independent writes, so they
        travel side by side (one round trip); shielded, so a disconnect cannot cut them off."""
        if self._final:
            return
        self._final = True
        request_ended(streamed=self._streamed)
        request_observed(key=self.key, event=event, attempts=self.attempts)
        owed = event.cost_usd - self._billed  # a stream's progress billed the rest already
        if event.cost_usd:
            _witness_billing()
        with tracing.span("mesh.ledger.record", self.request_id):
            await asyncio.shield(self._bill_and_record(event, owed))

    async def _bill_and_record(self, event: UsageEventData, owed: Decimal) -> None:
        """The XADD and the billing script queued in the same step, so one pipeline carries both
        (one task, no gather); the XADD's reply is handled by usage.recording."""
        written = usage_record_queued(event=event, opened=self._noted)
        await spend_add(key=self.key, cost_usd=owed, at=self.started_at, request_id=self.request_id)
        await usage_record_written(written)

    def _event(
        self,
        *,
        tokens: TokenUsage,
        cost: Decimal,
        estimated: bool = False,
        status: int = 200,
        error_code: str | None = None,
        cancelled: bool = False,
        provisional: bool = False,
        by: ServedBy | None = None,
    ) -> UsageEventData:
        by = by or self._served_by
        return UsageEventData(
            request_id=self.request_id,
            tenant_id=self.key.tenant_id,
            key_id=self.key.key_id,
            model_requested=self.model_requested,
            started_at=self.started_at,
            session_id=self.session_id,
            template_id=self.template_id,
            template_version=self.template_version,
            model_served=by.model if by is not None else None,
            provider=by.provider if by is not None else None,
            attempts=[attempt.as_dict() for attempt in self.attempts],
            tokens=tokens,
            tokens_estimated=estimated,
            cost_usd=cost,
            latency_ms=self._elapsed_ms(),
            ttft_ms=self._ttft_ms,
            http_status=status,
            error_code=error_code,
            streamed=self._streamed,
            cancelled=cancelled,
            provisional=provisional,
            comparison_id=self.comparison_id,
            endpoint=self.endpoint,
            images=self.images,
        )

    def _elapsed_ms(self) -> int:
        return int((time.time() - self._clock) * 1000)

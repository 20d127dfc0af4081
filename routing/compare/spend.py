"""A compare's spend gate: its runs' holds placed at once (`keys.spend_many`), so the spend caps
take or refuse the comparison as a whole, never some of its models."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal

from keys.spend import SpendHold
from keys.spend_many import HoldRequest, spend_holds_release, spend_reserve_many
from keys.types import ResolvedKey
from meshplatform.errors import GatewayError, InternalError
from usage.ledger import LedgerEntry


class CompareSpendGate:
    """The runs (by request id) each reach the gate at their hold step (routing.pipeline's
    `spend_gate`) and wait there; once every run has arrived or ended before it (`withdraw`),
    one atomic reservation holds all their worst cases or refuses them all with the same 402."""

    def __init__(self, *, key: ResolvedKey, request_ids: list[str], at: float) -> None:
        self._key = key
        self._at = at
        self._pending = set(request_ids)
        self._asks: dict[str, HoldRequest] = {}
        self._hold_s = 0.0
        self._decided = asyncio.Event()
        self._reservation: asyncio.Task[None] | None = None
        self._holds: dict[str, SpendHold] = {}
        self._abandoned: set[str] = set()
        self.refusal: GatewayError | None = None

    async def __call__(
        self, *, entry: LedgerEntry, worst_case_usd: Decimal, expected_usd: Decimal, hold_s: float
    ) -> SpendHold | None:
        request_id = entry.request_id
        self._asks[request_id] = HoldRequest(
            request_id=request_id, worst_case_usd=worst_case_usd, expected_usd=expected_usd
        )
        self._hold_s = max(self._hold_s, hold_s)
        self._arrived(request_id)
        try:
            await self._decided.wait()
        except asyncio.CancelledError:  # its entry bills it now, before its hold may exist
            self._abandoned.add(request_id)
            if self._decided.is_set():
                await asyncio.shield(self._release_abandoned())
            raise
        if self.refusal is not None:
            raise copy.copy(self.refusal)  # each run raises (and records) its own instance
        return self._holds.get(request_id)

    async def decided(self) -> None:
        """Wait until the runs' holds are placed, or refused (`refusal`)."""
        await self._decided.wait()

    def withdraw(self, request_id: str) -> None:
        """A run ended without reaching the gate (it failed before its hold step, or it is over)."""
        self._arrived(request_id)

    def _arrived(self, request_id: str) -> None:
        self._pending.discard(request_id)
        if not self._pending and self._reservation is None:
            # A task of its own: a run cancelled while waiting cannot leave the others waiting.
            self._reservation = asyncio.ensure_future(self._reserve())

    async def _reserve(self) -> None:
        try:
            if self._asks:
                self._holds = await spend_reserve_many(
                    key=self._key, requests=list(self._asks.values()), at=self._at, hold_s=self._hold_s
                )
        except GatewayError as error:
            self.refusal = error
        except Exception as error:  # the runs fail as our 500, recorded each by its own entry
            self.refusal = InternalError(f"The spend caps could not be checked ({type(error).__name__}).")
        finally:
            self._decided.set()
        await self._release_abandoned()

    async def _release_abandoned(self) -> None:
        """Holds placed for runs cancelled while they waited (the client left): nobody bills them."""
        abandoned = [request_id for request_id in self._abandoned if request_id in self._holds]
        for request_id in abandoned:
            self._holds.pop(request_id)
        if abandoned:
            await spend_holds_release(tenant_id=self._key.tenant_id, request_ids=abandoned)

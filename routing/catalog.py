"""Catalog lookups for the hot path: a per-worker copy, refreshed when Redis says it changed.

Admin edits (catalog models and tenants' model aliases) bump a version in Redis; each worker
compares at most every MESH_CATALOG_CHECK_INTERVAL_S (in the background), so the hot path does
no database query and, between checks, no Redis round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from ulid import ULID

from meshplatform.db import db_call
from meshplatform.loops import LoopLocal
from meshplatform.redis import REDIS_UNAVAILABLE, OutageLog, get_sync_redis
from meshplatform.redis_batch import redis_batched
from routing.catalog_seed import SEED_MODELS, seed_defaults
from routing.media_tokens import NO_BOUND, MediaTokens, media_tokens_default
from routing.models import CatalogModel, ModelAlias
from usage.types import TokenUsage

VERSION_KEY = "mesh:catalog:version"
outage = OutageLog("the model catalog version")
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    model_id: str
    provider: str
    upstream_name: str
    input_per_mtok_usd: Decimal
    output_per_mtok_usd: Decimal
    cached_input_per_mtok_usd: Decimal
    context_window: int
    max_output_tokens: int | None
    cache_write_per_mtok_usd: Decimal | None = None  # None = the input price
    reasoning: bool = False  # the model can think (OpenAI's reasoning_effort maps to a budget)
    # The most prompt tokens one content part of a kind costs (None: up to the context window).
    media_tokens: MediaTokens = NO_BOUND
    kind: str = "chat"  # routing.models.ModelKind: the one endpoint this model serves
    dimensions: int | None = None  # embedding models: the default vector length
    # Image models: quality → size → USD per image (routing.media_pipeline.image_price reads it).
    image_prices: dict[str, dict[str, Decimal]] = field(default_factory=dict, hash=False, compare=False)

    def part_max_tokens(self, kind: str) -> int:
        bound: int | None = getattr(self.media_tokens, kind)
        return self.context_window if bound is None else bound

    def cost(self, tokens: TokenUsage) -> Decimal:
        """USD cost of `tokens` at this entry's prices: cache reads at the cached rate, cache writes
        at the cache-write rate, the rest of the prompt at the input rate."""
        cached = min(tokens.cached_tokens, tokens.prompt_tokens)
        written = min(tokens.cache_write_tokens, tokens.prompt_tokens - cached)
        fresh = tokens.prompt_tokens - cached - written
        write_price = self.cache_write_per_mtok_usd
        return (
            fresh * self.input_per_mtok_usd
            + cached * self.cached_input_per_mtok_usd
            + written * (self.input_per_mtok_usd if write_price is None else write_price)
            + tokens.completion_tokens * self.output_per_mtok_usd
        ) / MILLION


@dataclass(frozen=True, slots=True)
class Catalog:
    """The enabled entries by id, indexed for every name a client may send (all O(1) lookups)."""

    version: str | None
    entries: dict[str, CatalogEntry]
    # Bare names: upstream name (`gpt-4o-mini`) → the entries serving it, by id.
    by_upstream_name: dict[str, tuple[CatalogEntry, ...]] = field(default_factory=dict)
    # Tenant id → alias → the catalog id it names (which may be disabled or gone).
    aliases: dict[int, dict[str, str]] = field(default_factory=dict)

    def get(self, model_id: str) -> CatalogEntry | None:
        entry = self.entries.get(model_id)
        if entry is None and model_id.startswith("google/"):  # Gemini's other spelling
            entry = self.entries.get("gemini/" + model_id[len("google/") :])
        return entry

    def tenant_aliases(self, tenant_id: int) -> dict[str, str]:
        return self.aliases.get(tenant_id, _NO_ALIASES)


_NO_ALIASES: dict[str, str] = {}


def catalog_build(
    version: str | None, entries: dict[str, CatalogEntry], aliases: dict[int, dict[str, str]]
) -> Catalog:
    by_name: defaultdict[str, list[CatalogEntry]] = defaultdict(list)
    for model_id in sorted(entries):
        by_name[entries[model_id].upstream_name].append(entries[model_id])
    return Catalog(
        version=version,
        entries=entries,
        by_upstream_name={name: tuple(found) for name, found in by_name.items()},
        aliases=aliases,
    )


def _entry(row: CatalogModel) -> CatalogEntry:
    return CatalogEntry(
        model_id=row.model_id,
        provider=row.provider,
        upstream_name=row.upstream_name,
        input_per_mtok_usd=row.input_per_mtok_usd,
        output_per_mtok_usd=row.output_per_mtok_usd,
        cached_input_per_mtok_usd=row.cached_input_per_mtok_usd
        if row.cached_input_per_mtok_usd is not None
        else row.input_per_mtok_usd,
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        cache_write_per_mtok_usd=row.cache_write_per_mtok_usd,
        reasoning=row.reasoning,
        media_tokens=MediaTokens(
            image=row.image_part_max_tokens,
            audio=row.audio_part_max_tokens,
            video=row.video_part_max_tokens,
            file=row.file_part_max_tokens,
        ),
        kind=row.kind,
        dimensions=row.dimensions,
        image_prices={
            quality: {size: Decimal(price) for size, price in sizes.items()}
            for quality, sizes in (row.image_prices or {}).items()
        },
    )


@db_call
def _load() -> tuple[dict[str, CatalogEntry], dict[int, dict[str, str]]]:
    entries = {row.model_id: _entry(row) for row in CatalogModel.objects.filter(enabled=True)}
    aliases: defaultdict[int, dict[str, str]] = defaultdict(dict)
    for tenant_id, alias, target in ModelAlias.objects.values_list("tenant_id", "alias", "target__model_id"):
        aliases[tenant_id][alias] = target
    return entries, dict(aliases)


async def _current_version() -> str | None:
    """The catalog version in Redis, created when missing (e.g. after a flush); None without Redis."""
    try:
        raw = await redis_batched("GET", VERSION_KEY)
        if raw is None:
            await redis_batched("SET", VERSION_KEY, str(ULID()), "NX")
            raw = await redis_batched("GET", VERSION_KEY)
    except REDIS_UNAVAILABLE as error:  # reload from the database, keep serving
        outage.failed(error)
        return None
    outage.recovered()
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class CatalogCache:
    """One per worker process (and event loop)."""

    def __init__(self) -> None:
        self.snapshot: Catalog | None = None
        self.checked_at = 0.0
        self.refresh_task: asyncio.Task[None] | None = None

    async def get(self) -> Catalog:
        interval = settings.MESH_CATALOG_CHECK_INTERVAL_S
        if self.snapshot is None or interval <= 0:
            await self.refresh()
        elif time.monotonic() - self.checked_at > interval and self.refresh_task is None:
            self.refresh_task = asyncio.create_task(self._background_refresh())
        assert self.snapshot is not None
        return self.snapshot

    async def _background_refresh(self) -> None:
        try:
            await self.refresh()
        finally:
            self.refresh_task = None

    async def refresh(self) -> None:
        version = await _current_version()
        self.checked_at = time.monotonic()
        if self.snapshot is not None and version is not None and version == self.snapshot.version:
            return
        entries, aliases = await _load()
        self.snapshot = catalog_build(version, entries, aliases)


_caches = LoopLocal(CatalogCache)


async def catalog_current() -> Catalog:
    return await _caches.get().get()


def catalog_changed() -> None:
    """Tell every worker to reload the catalog (after the surrounding transaction commits)."""
    transaction.on_commit(lambda: get_sync_redis().set(VERSION_KEY, str(ULID())))


def _media_defaults(model_id: str) -> dict[str, int | None]:
    return {
        f"{kind}_part_max_tokens": value for kind, value in media_tokens_default(model_id)._asdict().items()
    }


def catalog_seed() -> int:
    """Create the seed models that are missing; returns how many were created."""
    created = 0
    for seed in SEED_MODELS:
        _, was_created = CatalogModel.objects.get_or_create(
            model_id=seed.model_id, defaults={**seed_defaults(seed), **_media_defaults(seed.model_id)}
        )
        created += was_created
    if created:
        catalog_changed()
    return created

"""Choosing the models to try: request → template → key default → platform default, then `models`."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.errors import Forbidden, ModelNotFound, ProviderNotAvailable
from routing.catalog import Catalog, CatalogEntry
from routing.providers.base import ProviderAdapter
from routing.providers.registry import provider_get
from usage.ledger import ServedBy


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: CatalogEntry
    adapter: ProviderAdapter

    @property
    def served_by(self) -> ServedBy:
        return ServedBy(model=self.entry.model_id, provider=self.adapter.name, tariff=self.entry)


def model_requested(*, request_model: str | None, template_model: str | None, key: ResolvedKey) -> str:
    return request_model or template_model or key.default_model or settings.MESH_DEFAULT_MODEL


def candidates_resolve(
    *, catalog: Catalog, model_id: str, fallbacks: list[str] | None, key: ResolvedKey
) -> list[Candidate]:
    """The ordered models to try; 404 for unknown ids, 403 outside the key's allow-list,
    503 when no listed model's provider is configured."""
    ids = list(dict.fromkeys([model_id, *(fallbacks or [])]))
    candidates: list[Candidate] = []
    unconfigured: list[str] = []
    for position, candidate_id in enumerate(ids):
        entry = catalog.get(candidate_id)
        param = "model" if position == 0 else f"models.{position - 1}"
        if entry is None:
            raise ModelNotFound(
                f"The model {candidate_id!r} does not exist in this gateway's catalog.", param=param
            )
        if key.allowed_models and candidate_id not in key.allowed_models:
            raise Forbidden(f"This API key may not use the model {candidate_id!r}.", param=param)
        adapter = provider_get(entry.provider)
        if adapter is None or not adapter.configured:
            unconfigured.append(candidate_id)
            continue
        candidates.append(Candidate(entry=entry, adapter=adapter))
    if not candidates:
        names = ", ".join(repr(i) for i in unconfigured)
        raise ProviderNotAvailable(
            f"No configured provider serves {names} on this deployment.", param="model"
        )
    return candidates

"""Choosing the models to try: request → template → key default → platform default, then `models`.

A name is a catalog id (`openai/gpt-4o-mini`), else one of the tenant's aliases (`fast`), else a
bare upstream name (`gpt-4o-mini`, what litellm sends once it strips its `openai/` prefix) that
exactly one configured entry serves. Every step is a dict lookup in the cached catalog."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.errors import Forbidden, GatewayError, ModelNotFound, ProviderNotAvailable
from routing.catalog import Catalog, CatalogEntry
from routing.providers.base import ProviderAdapter
from routing.providers.registry import provider_get, provider_is_configured
from usage.ledger import ServedBy


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: CatalogEntry
    adapter: ProviderAdapter

    @property
    def served_by(self) -> ServedBy:
        return ServedBy(model=self.entry.model_id, provider=self.adapter.name, tariff=self.entry)


# What each kind of catalog model serves, for the error naming the endpoint to use instead.
ENDPOINT_OF_KIND = {
    "chat": "/v1/chat/completions",
    "embedding": "/v1/embeddings",
    "image": "/v1/images/generations",
}


class WrongModelKind(GatewayError):
    """The model exists but serves another endpoint (an embedding model asked to chat…)."""

    code = "model_not_supported"
    http_status = 400


def model_kind_check(entry: CatalogEntry, *, name: str, kind: str, param: str = "model") -> None:
    if entry.kind != kind:
        where = ENDPOINT_OF_KIND.get(entry.kind, entry.kind)
        raise WrongModelKind(
            f"The model {name!r} is not {_article(entry.kind)} {kind} model: it is served by {where}.",
            param=param,
        )


def _article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


def model_requested(*, request_model: str | None, template_model: str | None, key: ResolvedKey) -> str:
    return request_model or template_model or key.default_model or settings.MESH_DEFAULT_MODEL


def model_resolve(*, catalog: Catalog, name: str, tenant_id: int, param: str = "model") -> CatalogEntry:
    """The catalog entry `name` means for this tenant; 404 when it names none, or several."""
    entry = catalog.get(name)
    if entry is not None:
        return entry
    target = catalog.tenant_aliases(tenant_id).get(name)
    if target is not None:
        entry = catalog.entries.get(target)
        if entry is None:
            raise ModelNotFound(
                f"The alias {name!r} names {target!r}, which is not in the catalog now.",
                param=param,
            )
        return entry
    serving = catalog.by_upstream_name.get(name, ())
    configured = [e for e in serving if provider_is_configured(e.provider)]
    if len(configured) == 1 or (not configured and len(serving) == 1):
        return configured[0] if configured else serving[0]  # an unconfigured one answers 503 later
    if configured:
        ids = ", ".join(repr(e.model_id) for e in configured)
        raise ModelNotFound(f"The model name {name!r} is ambiguous: use one of {ids}.", param=param)
    raise ModelNotFound(f"The model {name!r} does not exist in this gateway's catalog.", param=param)


def model_allowed(key: ResolvedKey, name: str, entry: CatalogEntry) -> bool:
    """The key's allow-list may name the catalog id or the name the client sent (an alias)."""
    return not key.allowed_models or entry.model_id in key.allowed_models or name in key.allowed_models


def candidates_resolve(
    *, catalog: Catalog, model_id: str, fallbacks: list[str] | None, key: ResolvedKey, kind: str = "chat"
) -> list[Candidate]:
    """The ordered models to try; 404 for unknown ids, 400 for a model of another `kind` than the
    endpoint serves, 403 outside the key's allow-list, 503 when no listed model's provider is
    configured."""
    ids = list(dict.fromkeys([model_id, *(fallbacks or [])]))
    candidates: list[Candidate] = []
    unconfigured: list[str] = []
    seen: set[str] = set()
    for position, candidate_id in enumerate(ids):
        param = "model" if position == 0 else f"models.{position - 1}"
        entry = model_resolve(catalog=catalog, name=candidate_id, tenant_id=key.tenant_id, param=param)
        if entry.kind != kind:
            model_kind_check(entry, name=candidate_id, kind=kind, param=param)
        if not model_allowed(key, candidate_id, entry):
            raise Forbidden(f"This API key may not use the model {candidate_id!r}.", param=param)
        if entry.model_id in seen:  # two names of one model: try it once
            continue
        seen.add(entry.model_id)
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

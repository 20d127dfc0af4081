"""Writes to the model catalog: saved, audited (prices above all), and announced to every worker."""

from __future__ import annotations

from django.db import transaction

from keys.audit import audit_changes, audit_record, audit_snapshot
from routing.catalog import catalog_changed
from routing.models import CatalogModel

CATALOG_AUDITED = (
    "model_id", "provider", "upstream_name", "input_per_mtok_usd", "output_per_mtok_usd",
    "cached_input_per_mtok_usd", "cache_write_per_mtok_usd", "context_window", "max_output_tokens",
    "reasoning", "enabled",
)  # fmt: skip
PRICES = {name for name in CATALOG_AUDITED if name.endswith("_per_mtok_usd")}


@transaction.atomic
def catalog_model_save(*, model: CatalogModel) -> CatalogModel:
    """Create or edit an entry; a price change is its own audit action (finance looks for those)."""
    stored = CatalogModel.objects.filter(pk=model.pk).first() if model.pk else None
    model.save()
    after = audit_snapshot(model, CATALOG_AUDITED)
    if stored is None:
        audit_record(action="catalog.create", target=model, tenant_id=None, after=after)
    else:
        before, after = audit_changes(audit_snapshot(stored, CATALOG_AUDITED), after)
        action = "price.change" if set(after) & PRICES else "catalog.edit"
        audit_record(action=action, target=model, tenant_id=None, before=before, after=after)
    catalog_changed()  # on commit
    return model


@transaction.atomic
def catalog_model_delete(*, model: CatalogModel) -> None:
    audit_record(
        action="catalog.delete", target=model, tenant_id=None, before=audit_snapshot(model, CATALOG_AUDITED)
    )
    model.delete()
    catalog_changed()  # on commit

"""Stored responses (services write, selectors read), always scoped to the key's tenant: another
tenant's response id is answered exactly like an id that never existed."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.conf import settings

from meshplatform.db import db_call
from meshplatform.errors import BadRequest, NotFound
from responses_api.models import StoredResponse


def response_not_found(response_id: str) -> NotFound:
    return NotFound(f"No response with id {response_id!r}.", param="response_id")


def _stored_response_save(
    *,
    tenant_id: int,
    key_id: int,
    request_id: str,
    response: dict[str, Any],
    context: list[dict[str, Any]],
    input_items: list[dict[str, Any]],
) -> None:
    StoredResponse.objects.create(
        id=response["id"],
        tenant_id=tenant_id,
        api_key_id=key_id,
        request_id=request_id,
        model=response["model"],
        previous_response_id=response.get("previous_response_id") or "",
        context=context,
        input_items=input_items,
        output=response["output"],
        response=response,
        created_at=dt.datetime.fromtimestamp(response["created_at"], tz=dt.UTC),
    )


stored_response_save = db_call(_stored_response_save)


MAX_ID_CHARS = 64


def _is_an_id(response_id: str) -> bool:
    """Whether `response_id` could name a stored response (PostgreSQL text cannot hold NUL)."""
    return len(response_id) <= MAX_ID_CHARS and "\x00" not in response_id


def _stored_response_get(*, tenant_id: int, response_id: str) -> StoredResponse:
    if not _is_an_id(response_id):
        raise response_not_found(response_id[:MAX_ID_CHARS])
    try:
        return StoredResponse.objects.get(tenant_id=tenant_id, id=response_id)
    except StoredResponse.DoesNotExist:
        raise response_not_found(response_id) from None


stored_response_get = db_call(_stored_response_get)


def _stored_response_delete(*, tenant_id: int, response_id: str) -> None:
    if not _is_an_id(response_id):
        raise response_not_found(response_id[:MAX_ID_CHARS])
    deleted, _ = StoredResponse.objects.filter(tenant_id=tenant_id, id=response_id).delete()
    if not deleted:
        raise response_not_found(response_id)


stored_response_delete = db_call(_stored_response_delete)


def _conversation_before(*, tenant_id: int, previous_response_id: str | None) -> list[dict[str, Any]]:
    """The items a request continuing `previous_response_id` comes after: that response's context,
    its input and its output (400 when the tenant has no such response)."""
    if previous_response_id is None:
        return []
    previous = (
        StoredResponse.objects.filter(tenant_id=tenant_id, id=previous_response_id)
        .values_list("context", "input_items", "output")
        .first()
    )
    if previous is None:
        raise BadRequest(
            f"Previous response with id {previous_response_id!r} not found.",
            param="previous_response_id",
            code="previous_response_not_found",
            http_status=400,
        )
    context, input_items, output = previous
    return [*context, *input_items, *output]


conversation_before = db_call(_conversation_before)


def conversation_bounds_check(items: int) -> None:
    """A conversation continued past MESH_MAX_MESSAGES items is refused, naming what made it long."""
    limit = settings.MESH_MAX_MESSAGES
    if items > limit:
        msg = f"the conversation would hold {items} items, more than {limit} (MESH_MAX_MESSAGES)"
        raise BadRequest(
            f"previous_response_id: {msg}",
            param="previous_response_id",
            details=[{"loc": ["body", "previous_response_id"], "msg": msg, "type": "too_long"}],
        )


def input_items_page(
    items: list[dict[str, Any]], *, limit: int, order: Literal["asc", "desc"], after: str | None
) -> dict[str, Any]:
    """OpenAI's list of input items: `order` (newest first by default), `limit`, the cursor `after`."""
    ordered = items if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise BadRequest(
                f"No input item with id {after!r} in this response.", param="after", http_status=400
            )
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }

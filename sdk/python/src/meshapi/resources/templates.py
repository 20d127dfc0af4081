"""`client.templates`: prompt templates (CRUD, versions, render preview, restore), by name or UUID."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack
from urllib.parse import quote

from pydantic import BaseModel

from meshapi._base import RequestOptions
from meshapi._sentinel import NOT_GIVEN, NotGiven
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.chat import ChatMessage, TemplateVariableLike
from meshapi.types.shared import ListPage
from meshapi.types.templates import Template, TemplateRender, TemplateVersion

MessageLike = ChatMessage | Mapping[str, Any]


def template_path(ref: str, action: str = "") -> str:
    if not ref:
        raise ValueError("a template name, name@version or UUID is required")
    return f"/v1/templates/{quote(ref, safe='@')}" + (f"/{action}" if action else "")


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def template_body(**fields: Any) -> dict[str, Any]:
    """The fields that were given (None included: PATCH `model=None` clears the template's model)."""
    return {name: _json(value) for name, value in fields.items() if value is not NOT_GIVEN}


def page_params(limit: int | None, offset: int | None) -> dict[str, Any]:
    return {"limit": limit, "offset": offset}


class Templates:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(
        self,
        *,
        name: str,
        messages: Sequence[MessageLike],
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        variables: Sequence[TemplateVariableLike] | None = None,
        description: str | NotGiven = NOT_GIVEN,
        **options: Unpack[RequestOptions],
    ) -> Template:
        body = template_body(
            name=name, messages=messages, model=model, params=params or {},
            variables=variables or [], description=description,
        )  # fmt: skip
        return self._transport.request(Template, "POST", "/v1/templates", options, json=body)

    def list(
        self, *, limit: int | None = None, offset: int | None = None, **options: Unpack[RequestOptions]
    ) -> ListPage[Template]:
        params = page_params(limit, offset)
        return self._transport.request(ListPage[Template], "GET", "/v1/templates", options, params=params)

    def retrieve(self, ref: str, **options: Unpack[RequestOptions]) -> Template:
        return self._transport.request(Template, "GET", template_path(ref), options)

    def update(
        self,
        ref: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        description: str | NotGiven = NOT_GIVEN,
        messages: Sequence[MessageLike] | NotGiven = NOT_GIVEN,
        model: str | NotGiven | None = NOT_GIVEN,
        params: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        variables: Sequence[TemplateVariableLike] | NotGiven = NOT_GIVEN,
        **options: Unpack[RequestOptions],
    ) -> Template:
        """Changes only what you pass; new content (messages, model, params, variables) is a new version."""
        body = template_body(
            name=name, description=description, messages=messages, model=model,
            params=params, variables=variables,
        )  # fmt: skip
        return self._transport.request(Template, "PATCH", template_path(ref), options, json=body)

    def delete(self, ref: str, **options: Unpack[RequestOptions]) -> None:
        self._transport.send(self._transport.prepare("DELETE", template_path(ref), options))

    def versions(
        self,
        ref: str,
        *,
        limit: int | None = None,
        offset: int | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[TemplateVersion]:
        """Version history, newest first."""
        path, params = template_path(ref, "versions"), page_params(limit, offset)
        return self._transport.request(ListPage[TemplateVersion], "GET", path, options, params=params)

    def render(
        self,
        ref: str,
        *,
        variables: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> TemplateRender:
        """The messages a request with this template would send; no model is called."""
        body = {"variables": dict(variables or {})}
        path = template_path(ref, "render")
        return self._transport.request(TemplateRender, "POST", path, options, json=body)

    def restore(self, ref: str, *, version: int, **options: Unpack[RequestOptions]) -> TemplateVersion:
        """Copies an old version's content into a new active version."""
        path, body = template_path(ref, "restore"), {"version": version}
        return self._transport.request(TemplateVersion, "POST", path, options, json=body)


class AsyncTemplates:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(
        self,
        *,
        name: str,
        messages: Sequence[MessageLike],
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        variables: Sequence[TemplateVariableLike] | None = None,
        description: str | NotGiven = NOT_GIVEN,
        **options: Unpack[RequestOptions],
    ) -> Template:
        body = template_body(
            name=name, messages=messages, model=model, params=params or {},
            variables=variables or [], description=description,
        )  # fmt: skip
        return await self._transport.request(Template, "POST", "/v1/templates", options, json=body)

    async def list(
        self, *, limit: int | None = None, offset: int | None = None, **options: Unpack[RequestOptions]
    ) -> ListPage[Template]:
        params = page_params(limit, offset)
        path = "/v1/templates"
        return await self._transport.request(ListPage[Template], "GET", path, options, params=params)

    async def retrieve(self, ref: str, **options: Unpack[RequestOptions]) -> Template:
        return await self._transport.request(Template, "GET", template_path(ref), options)

    async def update(
        self,
        ref: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        description: str | NotGiven = NOT_GIVEN,
        messages: Sequence[MessageLike] | NotGiven = NOT_GIVEN,
        model: str | NotGiven | None = NOT_GIVEN,
        params: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        variables: Sequence[TemplateVariableLike] | NotGiven = NOT_GIVEN,
        **options: Unpack[RequestOptions],
    ) -> Template:
        body = template_body(
            name=name, description=description, messages=messages, model=model,
            params=params, variables=variables,
        )  # fmt: skip
        return await self._transport.request(Template, "PATCH", template_path(ref), options, json=body)

    async def delete(self, ref: str, **options: Unpack[RequestOptions]) -> None:
        await self._transport.send(self._transport.prepare("DELETE", template_path(ref), options))

    async def versions(
        self,
        ref: str,
        *,
        limit: int | None = None,
        offset: int | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[TemplateVersion]:
        path, params = template_path(ref, "versions"), page_params(limit, offset)
        return await self._transport.request(ListPage[TemplateVersion], "GET", path, options, params=params)

    async def render(
        self,
        ref: str,
        *,
        variables: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> TemplateRender:
        body = {"variables": dict(variables or {})}
        path = template_path(ref, "render")
        return await self._transport.request(TemplateRender, "POST", path, options, json=body)

    async def restore(self, ref: str, *, version: int, **options: Unpack[RequestOptions]) -> TemplateVersion:
        path, body = template_path(ref, "restore"), {"version": version}
        return await self._transport.request(TemplateVersion, "POST", path, options, json=body)

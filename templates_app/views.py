"""The template API (/v1/templates): thin DRF views, every query scoped to the key's tenant."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from keys.drf import request_key
from meshplatform.errors import BadRequest
from templates_app.rendering import compiled_for
from templates_app.selectors import (
    template_get,
    template_list,
    template_not_found,
    template_version_resolve,
    template_versions,
)
from templates_app.serializers import (
    CONTENT_FIELDS,
    RenderResultSerializer,
    RenderSerializer,
    RestoreSerializer,
    TemplateSerializer,
    TemplateWriteSerializer,
    VersionSerializer,
)
from templates_app.services import (
    template_create,
    template_delete,
    template_restore,
    template_update,
)
from templates_app.types import TemplateContent


class ListPagination(LimitOffsetPagination):
    """OpenAI's list shape (`object`, `data`) plus limit/offset paging links."""

    default_limit = 50
    max_limit = 200

    def get_limit(self, request: Request) -> int:
        return self._bounded(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request: Request) -> int:
        return self._bounded(request, self.offset_query_param, 0, 2**31 - 1, 0)

    @staticmethod
    def _bounded(request: Request, name: str, low: int, high: int, default: int) -> int:
        """The integer query parameter, or a 422 (DRF's own silently uses the default)."""
        values = request.query_params.getlist(name)
        if not values:
            return default
        raw = values[-1]
        if len(values) > 1 or not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise BadRequest(
                f"{name} must be one integer from {low} to {high}.",
                param=name,
                details=[
                    {"loc": ["query", name], "msg": f"an integer from {low} to {high}", "type": "int_range"}
                ],
            )
        return int(raw)

    def get_paginated_response(self, data: Any) -> Response:
        count = self.count or 0  # all three are set by paginate_queryset before this is called
        return Response(
            {
                "object": "list",
                "data": data,
                "count": count,
                "has_more": (self.offset or 0) + (self.limit or 0) < count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["object", "data", "count", "has_more"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": schema,
                "count": {"type": "integer"},
                "has_more": {"type": "boolean"},
                "next": {"type": ["string", "null"], "format": "uri"},
                "previous": {"type": ["string", "null"], "format": "uri"},
            },
        }


def _author(request: Request) -> str:
    key = request_key(request)
    return f"api key {key.key_prefix}… ({key.key_name})" if key.key_name else f"api key {key.key_prefix}…"


@extend_schema_view(
    list=extend_schema(summary="The key's tenant's templates", responses=TemplateSerializer(many=True)),
    create=extend_schema(request=TemplateWriteSerializer, responses={201: TemplateSerializer}),
    retrieve=extend_schema(summary="A template by name or UUID", responses=TemplateSerializer),
    partial_update=extend_schema(
        summary="Rename, describe, or change content (a new version)",
        request=TemplateWriteSerializer(partial=True),
        responses=TemplateSerializer,
    ),
    destroy=extend_schema(responses={204: None}),
    versions=extend_schema(summary="Version history, newest first", responses=VersionSerializer(many=True)),
    render_preview=extend_schema(
        summary="Render without calling a model", request=RenderSerializer, responses=RenderResultSerializer
    ),
    restore=extend_schema(
        summary="Copy an old version into a new active version",
        request=RestoreSerializer,
        responses={201: VersionSerializer},
    ),
)
class TemplateViewSet(viewsets.GenericViewSet[Any]):  # templates and their versions
    serializer_class = TemplateSerializer
    lookup_field = "ref"
    lookup_value_regex = "[^/]+"
    pagination_class = ListPagination

    @property
    def tenant_id(self) -> int:
        return request_key(self.request).tenant_id

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(template_list(tenant_id=self.tenant_id).order_by("name"))
        return self.get_paginated_response(TemplateSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        data = _valid(TemplateWriteSerializer(data=request.data))
        template = template_create(
            tenant_id=self.tenant_id,
            name=data["name"],
            description=data["description"],
            content=TemplateContent(
                messages=data["messages"],
                model=data["model"],
                params=data["params"],
                variables=data["variables"],
            ),
            created_by=_author(request),
        )
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, ref: str) -> Response:
        return Response(TemplateSerializer(template_get(tenant_id=self.tenant_id, ref=ref)).data)

    def partial_update(self, request: Request, ref: str) -> Response:
        template = template_get(tenant_id=self.tenant_id, ref=ref)
        data = _valid(TemplateWriteSerializer(data=request.data, partial=True))
        template = template_update(
            template=template,
            created_by=_author(request),
            name=data.get("name"),
            description=data.get("description"),
            content_changes={name: data[name] for name in CONTENT_FIELDS if name in data},
        )
        return Response(TemplateSerializer(template).data)

    def destroy(self, request: Request, ref: str) -> Response:
        template_delete(template=template_get(tenant_id=self.tenant_id, ref=ref))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def versions(self, request: Request, ref: str) -> Response:
        template = template_get(tenant_id=self.tenant_id, ref=ref)
        page = self.paginate_queryset(template_versions(template=template).select_related("template"))
        return self.get_paginated_response(VersionSerializer(page, many=True).data)

    @action(detail=True, methods=["post"], url_path="render")
    def render_preview(self, request: Request, ref: str) -> Response:
        """The rendered messages without calling a model; `ref` as in a chat request (`name@3`…)."""
        variables = _valid(RenderSerializer(data=request.data))["variables"]
        payload = template_version_resolve(tenant_id=self.tenant_id, ref=ref)
        if payload is None:
            raise template_not_found(ref)
        compiled = compiled_for(payload)
        return Response(
            {
                "object": "template.render",
                "template_id": compiled.template_id,
                "version": compiled.number,
                "version_id": compiled.version_id,
                "model": compiled.model,
                "params": compiled.render_params(),
                "messages": compiled.render_messages(variables),
            }
        )

    @action(detail=True, methods=["post"])
    def restore(self, request: Request, ref: str) -> Response:
        """Makes an old version's content active again, as a new version (see template_restore)."""
        number = _valid(RestoreSerializer(data=request.data))["version"]
        template = template_get(tenant_id=self.tenant_id, ref=ref)
        version = template_restore(template=template, number=number, created_by=_author(request))
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


def _valid(serializer: Any) -> dict[str, Any]:
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data

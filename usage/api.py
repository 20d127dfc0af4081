"""GET /v1/usage: the key's tenant's usage, filtered, grouped, totalled and paginated (thin DRF view)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.drf import request_key
from meshplatform.errors import NotFound
from usage.selectors import usage_key_of_tenant, usage_report_page
from usage.types import API_GROUP_BY, UsageFilter, UsageGroup, UsageReport, UsageTotals

DEFAULT_DAYS = 30
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # far past any group count; PostgreSQL's OFFSET is a bigint


EARLIEST_TO = dt.date.min + dt.timedelta(days=DEFAULT_DAYS)


class UsageQuerySerializer(serializers.Serializer[Any]):
    """The query string. `from` is a Python keyword, so that field is added in get_fields."""

    to = serializers.DateField(required=False, help_text="Last day included (UTC, ISO date). Default: today.")
    session_id = serializers.CharField(required=False, max_length=256, help_text="Only this session.")
    key = serializers.CharField(
        required=False, max_length=40, help_text="Only this key of the tenant: its id or display prefix."
    )
    model = serializers.CharField(
        required=False, max_length=200, help_text="Only this model (the one that served, else the one asked)."
    )
    comparison_id = serializers.CharField(
        required=False, max_length=40, help_text="Only the model runs of this comparison (POST /v1/compare)."
    )
    group_by = serializers.ChoiceField(choices=API_GROUP_BY, default="day")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields: dict[str, Any] = super().get_fields()
        fields["from"] = serializers.DateField(
            required=False,
            help_text=f"First day included (UTC, ISO date). Default: {DEFAULT_DAYS} days back.",
        )
        return fields

    def to_internal_value(self, data: Any) -> Any:
        # DRF reads `to=` or `session_id=` as "not given"; an empty value is a malformed one.
        names: list[str] = list(self.fields)
        empty = [name for name in names if name in data and data.get(name) == ""]
        if empty:
            raise serializers.ValidationError({name: ["must not be empty."] for name in empty})
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        date_to = attrs.get("to") or dt.datetime.now(dt.UTC).date()
        default_from = date_to - dt.timedelta(days=DEFAULT_DAYS - 1) if date_to > EARLIEST_TO else dt.date.min
        date_from = attrs.get("from") or default_from
        if date_from > date_to:
            raise serializers.ValidationError({"from": ["must not be after `to`."]})
        return {**attrs, "from": date_from, "to": date_to}


class UsageTotalsSerializer(serializers.Serializer[UsageTotals]):
    requests = serializers.IntegerField()
    # `errors` and `data` are wire names that shadow Serializer attributes (DRF allows a declared field).
    errors = serializers.IntegerField(  # type: ignore[assignment]
        help_text="Requests that ended in an error (HTTP status ≥ 400)."
    )
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField(help_text="Part of prompt_tokens, billed at the cached rate.")
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=22, decimal_places=9, help_text="A decimal string.")


class UsageKeySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    prefix = serializers.CharField()
    name = serializers.CharField()


class UsageGroupSerializer(serializers.Serializer[UsageGroup]):
    group = serializers.CharField(
        source="value", help_text="The day (ISO date), session_id, key id or model this row sums."
    )
    key = serializers.SerializerMethodField()
    totals = UsageTotalsSerializer()

    @extend_schema_field(UsageKeySerializer(allow_null=True))
    def get_key(self, group: UsageGroup) -> dict[str, Any] | None:
        """Set when grouping by key: which key the row sums."""
        if group.key_prefix is None:
            return None
        return {"id": int(group.value), "prefix": group.key_prefix, "name": group.key_name or ""}


class UsageReportSerializer(serializers.Serializer[Any]):
    object = serializers.CharField(help_text='Always "usage.report".')
    group_by = serializers.ChoiceField(choices=API_GROUP_BY)
    totals = UsageTotalsSerializer(help_text="Over every group, not only this page.")
    data = UsageGroupSerializer(many=True)  # type: ignore[assignment]
    count = serializers.IntegerField(help_text="Groups in all.")
    has_more = serializers.BooleanField()
    next = serializers.URLField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        return {
            "object": fields.pop("object"),
            "from": serializers.DateField(source="date_from", help_text="First day included (UTC)."),
            "to": serializers.DateField(source="date_to", help_text="Last day included (UTC)."),
            **fields,
        }


def _next_link(request: Request, report: UsageReport, offset: int, limit: int) -> str | None:
    if offset + limit >= report.group_count:
        return None
    query = request.query_params.copy()
    query["offset"] = str(offset + limit)
    query["limit"] = str(limit)
    return str(request.build_absolute_uri(f"{request.path}?{query.urlencode()}"))


class UsageView(APIView):
    """Database connection scope comes from RequestScopeMiddleware (as for every management API)."""

    @extend_schema(
        operation_id="usage_report",
        summary="The key's tenant's usage, grouped, with totals",
        description=(
            "Reads the daily rollups (UTC days), which the platform refreshes every few seconds; "
            "a request's usage appears within about a minute of its end."
        ),
        parameters=[UsageQuerySerializer],
        responses={
            200: UsageReportSerializer,
            401: OpenApiResponse(description="Missing or unknown API key (ErrorEnvelope)."),
            404: OpenApiResponse(description="`key` is not one of the tenant's keys (ErrorEnvelope)."),
            422: OpenApiResponse(description="Invalid query parameters (ErrorEnvelope)."),
        },
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant_id = request_key(request).tenant_id
        key_id = None
        if params.get("key"):
            api_key = usage_key_of_tenant(tenant_id=tenant_id, ref=params["key"])
            if api_key is None:
                raise NotFound(f"No API key {params['key']!r} in this tenant.", param="key")
            key_id = api_key.pk
        usage_filter = UsageFilter(
            tenant_id=tenant_id, date_from=params["from"], date_to=params["to"],
            session_id=params.get("session_id"), key_id=key_id, model=params.get("model"),
            comparison_id=params.get("comparison_id"),
        )  # fmt: skip
        report = usage_report_page(
            usage_filter=usage_filter,
            group_by=params["group_by"],
            offset=params["offset"],
            limit=params["limit"],
        )
        body = {
            "object": "usage.report",
            "date_from": usage_filter.date_from,
            "date_to": usage_filter.date_to,
            "group_by": report.group_by,
            "totals": report.totals,
            "data": report.groups,
            "count": report.group_count,
            "has_more": params["offset"] + params["limit"] < report.group_count,
            "next": _next_link(request, report, params["offset"], params["limit"]),
        }
        return Response(UsageReportSerializer(body).data)

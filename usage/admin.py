"""Admin for finance: the usage ledger (read-only) and the usage report page with its CSV export."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from keys.admin_scoping import TenantScopedAdminMixin
from keys.models import Tenant
from usage.admin_report import PRESETS, ReportForm, usage_csv_stream, usage_scope_of
from usage.models import UsageEvent, UsageReport
from usage.report_page import TOP_TABLES, report_page_build, report_page_csv, report_top_table


class TenantFilter(admin.SimpleListFilter):
    """Tenants from the tenant table (not a DISTINCT over the ledger), only for who sees them all."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        scope = usage_scope_of(request)
        if scope is None or not scope.all_tenants:
            return []
        return [(str(pk), name) for pk, name in Tenant.objects.order_by("name").values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(tenant_id=self.value()) if self.value() else queryset


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"
    OUTCOMES = {
        "ok": Q(http_status__lt=400),
        "client_error": Q(http_status__gte=400, http_status__lt=499),
        "cancelled": Q(cancelled=True),
        "server_error": Q(http_status__gte=500),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name.replace("_", " ")) for name in self.OUTCOMES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        outcome = self.OUTCOMES.get(self.value() or "")
        return queryset.filter(outcome) if outcome is not None else queryset


class EndpointFilter(admin.SimpleListFilter):
    """The API a request called; fixed lookups (a distinct scan of the ledger would be its size)."""

    title = "endpoint"
    parameter_name = "endpoint"
    ENDPOINTS = ("chat.completions", "embeddings", "images.generations")

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in self.ENDPOINTS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(endpoint=value) if value in self.ENDPOINTS else queryset


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(TenantScopedAdminMixin, ReadOnlyAdmin):
    list_display = [
        "created_at", "request_id", "tenant", "key_prefix", "session_id", "endpoint", "model_served",
        "http_status", "prompt_tokens", "completion_tokens", "images", "cost_usd", "streamed", "cancelled",
    ]  # fmt: skip
    list_filter = [
        TenantFilter, OutcomeFilter, ("created_at", admin.DateFieldListFilter), EndpointFilter, "streamed",
        "sanitized",
    ]  # fmt: skip
    # Exact matches only: each hits an index (request_id the unique (request_id, created_at) one,
    # session_id and comparison_id their own) at any ledger size.
    search_fields = ["=request_id", "=session_id", "=comparison_id"]
    search_help_text = "An exact request_id (req_…), session_id or comparison_id (cmp_…)."
    list_select_related = ["tenant", "api_key"]
    show_full_result_count = False  # no second COUNT(*) over the whole ledger
    ordering = ["-created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        scope = usage_scope_of(request)
        if scope is not None and scope.all_tenants:
            # Finance reads every tenant: skip the mixin, which narrows to a tenant membership.
            return super(TenantScopedAdminMixin, self).get_queryset(request)
        return super().get_queryset(request)

    @admin.display(description="key", ordering="api_key__prefix")
    def key_prefix(self, event: UsageEvent) -> str:
        return f"{event.api_key.prefix}…"


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdmin):
    """The report page is its changelist (the proxy model gives it an admin entry and a permission)."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user: Any = request.user
        return user.has_perm("usage.view_usagereport") and usage_scope_of(request) is not None

    def get_urls(self) -> list[URLPattern]:
        """The page and its CSV only: no per-row views (a rollup row is not something to browse,
        and those views would not apply the tenant scope)."""
        site = self.admin_site
        return [
            path("csv/", site.admin_view(self.csv_view), name="usage_usagereport_csv"),
            path("table.csv", site.admin_view(self.table_csv_view), name="usage_usagereport_table_csv"),
            path("top/", site.admin_view(self.top_table_view), name="usage_usagereport_top"),
            path("", site.admin_view(self.changelist_view), name="usage_usagereport_changelist"),
        ]

    def _form(self, request: HttpRequest) -> ReportForm:
        scope = usage_scope_of(request)
        if scope is None or not self.has_view_permission(request):
            raise PermissionDenied
        return ReportForm(request.GET, scope=scope)

    def _page(self, form: ReportForm) -> Any:
        data = form.cleaned_data
        return report_page_build(
            usage_filter=form.usage_filter(),
            group_by=data["group_by"],
            stack_by=data.get("stack_by") or "model",
            bucket=form.bucket,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        form = self._form(request)
        query = request.GET.copy()
        query.pop("preset", None)
        presets = []
        for value, label in PRESETS.items():
            if value != "custom":
                preset_query = query.copy()
                preset_query["preset"] = value
                presets.append((value, label, preset_query.urlencode()))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Usage report",
            "opts": self.model._meta,
            "form": form,
            "scope": form.scope,
            "presets": presets,
            "current_preset": request.GET.get("preset", ""),
            "can_export": request.user.has_perm("usage.export_usage_csv"),
        }
        if form.is_valid():
            context.update(
                page=self._page(form),
                csv_url=f"{reverse('admin:usage_usagereport_csv')}?{request.GET.urlencode()}",
                table_csv_url=f"{reverse('admin:usage_usagereport_table_csv')}?{request.GET.urlencode()}",
                top_url=f"{reverse('admin:usage_usagereport_top')}?{request.GET.urlencode()}",
            )
        return TemplateResponse(request, "admin/usage/report.html", context)

    def top_table_view(self, request: HttpRequest) -> HttpResponse:
        """One top table of the report (?top=session_id and the report's filters) as an HTML
        fragment: the page fetches the tables it defers (report_page.DEFERRED_TOPS)."""
        form = self._form(request)
        top_by = request.GET.get("top", "")
        if top_by not in dict(TOP_TABLES):
            return HttpResponse(f"top must be one of {', '.join(dict(TOP_TABLES))}.", status=400,
                                content_type="text/plain")  # fmt: skip
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
        table = report_top_table(usage_filter=form.usage_filter(), top_by=top_by)
        return TemplateResponse(request, "admin/usage/report_top.html", {"table": table})

    def table_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """The page's main table and total as CSV, exactly the rows shown, with raw decimals."""
        form = self._form(request)
        user: Any = request.user
        if not user.has_perm("usage.export_usage_csv"):
            raise PermissionDenied
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
        page = self._page(form)
        # At most REPORT_GROUPS_SHOWN rows: built whole (the events CSV is the streamed one).
        response = HttpResponse(b"".join(report_page_csv(page)), content_type="text/csv; charset=utf-8")
        name = f"usage-report-{page.usage_filter.date_from}-{page.usage_filter.date_to}-{page.main.group_by}"
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response

    def csv_view(self, request: HttpRequest) -> HttpResponseBase:
        scope = usage_scope_of(request)
        user: Any = request.user
        if scope is None or not (
            self.has_view_permission(request) and user.has_perm("usage.export_usage_csv")
        ):
            raise PermissionDenied
        form = ReportForm(request.GET, scope=scope, bounded=False)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
        usage_filter = form.usage_filter()
        response = StreamingHttpResponse(
            usage_csv_stream(usage_filter=usage_filter), content_type="text/csv; charset=utf-8"
        )
        name = f"usage-{usage_filter.date_from}-{usage_filter.date_to}"
        if usage_filter.tenant_id is not None:
            name += f"-tenant{usage_filter.tenant_id}"
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response

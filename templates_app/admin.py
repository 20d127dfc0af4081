"""Admin for prompt templates: edit (a new version per content change), read-only version history,
a preview that renders with sample variables, and restoring an old version. Tenant-scoped."""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from keys.admin_scoping import TenantScopedAdminMixin, admin_tenant_of
from meshplatform.errors import BadRequest
from templates_app.admin_editor import draft_preview, versions_diff_html
from templates_app.forms import PromptTemplateForm
from templates_app.models import PromptTemplate, PromptTemplateVersion
from templates_app.rendering import compiled_for, template_slots
from templates_app.selectors import version_payload
from templates_app.services import template_create, template_delete, template_restore, template_update
from templates_app.types import TemplateContent


def _author(request: HttpRequest) -> str:
    return f"admin {request.user.get_username()}"


class VersionInline(admin.TabularInline):  # type: ignore[type-arg]
    """The history: versions are immutable, so every field is read-only and none can be added."""

    model = PromptTemplateVersion
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ("number", "created_at", "created_by", "model", "restored_from", "summary", "links")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="messages")
    def summary(self, version: PromptTemplateVersion) -> str:
        slots = ", ".join(template_slots(version.messages)) or "none"
        return f"{len(version.messages)} message(s); slots: {slots}"

    @admin.display(description="")
    def links(self, version: PromptTemplateVersion) -> str:
        template = version.template
        preview = reverse("admin:templates_app_prompttemplate_preview", args=[template.pk])
        diff = reverse("admin:templates_app_prompttemplate_diff", args=[template.pk])
        active = template.active_version.number if template.active_version else version.number
        links = format_html(
            '<a href="{}?version={}">Preview</a> · '
            '<a class="version-diff" href="{}?a={}&amp;b={}">Diff with active</a>',
            preview, version.number, diff, version.number, active,
        )  # fmt: skip
        if template.active_version_id == version.pk:
            return format_html("{} · <strong>active</strong>", links)
        restore = reverse("admin:templates_app_prompttemplate_restore", args=[template.pk, version.number])
        return format_html('{} · <a href="{}">Restore</a>', links, restore)


@admin.register(PromptTemplate)
class PromptTemplateAdmin(TenantScopedAdminMixin):
    form = PromptTemplateForm
    list_display = ["name", "tenant", "active_version_number", "description", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["uuid", "created_at", "updated_at"]
    inlines = [VersionInline]
    change_form_template = "admin/templates_app/prompttemplate/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[PromptTemplate]:
        return super().get_queryset(request).select_related("tenant", "active_version")

    def get_list_filter(self, request: HttpRequest) -> Any:
        # Only platform admins may see the list of tenants.
        return ["tenant"] if admin_tenant_of(request) is None else []

    def get_readonly_fields(self, request: HttpRequest, obj: PromptTemplate | None = None) -> list[str]:
        # A template never moves between tenants (its cached references are per tenant).
        return [*self.readonly_fields, "tenant"] if obj is not None else list(self.readonly_fields)

    def get_inlines(self, request: HttpRequest, obj: PromptTemplate | None) -> list[Any]:
        return list(self.inlines) if obj is not None else []

    @admin.display(description="version", ordering="active_version__number")
    def active_version_number(self, template: PromptTemplate) -> int | None:
        return template.active_version.number if template.active_version else None

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Through the services, so a content change is a new version and caches are invalidated."""
        if change:
            before = obj.active_version_id
            template_update(
                template=obj,
                created_by=_author(request),
                name=obj.name,
                description=obj.description,
                content_changes=form.content_changes(),
            )
            obj.refresh_from_db()
            if obj.active_version is not None and obj.active_version_id != before:
                self.message_user(request, f"Saved as version {obj.active_version.number}.", messages.INFO)
            return
        tenant = admin_tenant_of(request) or form.cleaned_data["tenant"]
        created = template_create(
            tenant_id=tenant.pk,
            name=obj.name,
            description=obj.description,
            content=TemplateContent(**form.content_changes()),
            created_by=_author(request),
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: PromptTemplate) -> None:
        template_delete(template=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PromptTemplate]) -> None:
        for template in queryset:
            template_delete(template=template)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/preview/",
                view(self.preview_view),
                name="templates_app_prompttemplate_preview",
            ),
            path("preview-draft/", view(self.draft_preview_view), name="templates_app_prompttemplate_draft"),
            path("<path:object_id>/diff/", view(self.diff_view), name="templates_app_prompttemplate_diff"),
            path(
                "<path:object_id>/restore/<int:number>/",
                view(self.restore_view),
                name="templates_app_prompttemplate_restore",
            ),
            *super().get_urls(),
        ]

    def _template_or_404(self, request: HttpRequest, object_id: str) -> PromptTemplate:
        template: PromptTemplate | None = self.get_object(request, unquote(object_id))  # tenant-scoped
        if template is None:
            raise Http404("No such template.")
        return template

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Renders a version (?version=N, default the active one) with sample values (?var_<slot>=…)."""
        template = self._template_or_404(request, object_id)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        number = request.GET.get("version", "")
        versions = template.versions.all()
        version = versions.filter(number=int(number)).first() if number.isdigit() else template.active_version
        if version is None:
            raise Http404("No such version.")
        compiled = compiled_for(version_payload(version))
        values = {s: request.GET[f"var_{s}"] for s in compiled.slots if request.GET.get(f"var_{s}")}
        rendered, error = None, None
        if "render" in request.GET:
            try:
                rendered = orjson.dumps(compiled.render_messages(values), option=orjson.OPT_INDENT_2).decode()
            except BadRequest as missing:
                error = missing.message
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview {template.name}@{version.number}",
            "opts": self.opts,
            "original": template,
            "version": version,
            "versions": versions,
            "slots": [(s, values.get(s, ""), compiled.defaults.get(s)) for s in compiled.slots],
            "rendered": rendered,
            "error": error,
        }
        return TemplateResponse(request, "admin/templates_app/prompttemplate/preview.html", context)

    def draft_preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST unsaved content (the editor's live preview): rendered with the real render service."""
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        return draft_preview(request.body)

    def diff_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Any two versions side by side (?a=N&b=M), each restorable from here."""
        template = self._template_or_404(request, object_id)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        versions = list(template.versions.order_by("-number"))
        by_number = {v.number: v for v in versions}
        active = template.active_version.number if template.active_version else versions[0].number
        a_ref, b_ref = request.GET.get("a", ""), request.GET.get("b", "")
        default_a = versions[1].number if len(versions) > 1 else active
        old = by_number.get(int(a_ref)) if a_ref.isdigit() else by_number.get(default_a)
        new = by_number.get(int(b_ref)) if b_ref.isdigit() else by_number.get(active)
        if old is None or new is None:
            raise Http404("No such version.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"{template.name}: version {old.number} → {new.number}",
            "opts": self.opts,
            "original": template,
            "versions": versions,
            "old": old,
            "new": new,
            "active": active,
            "diff_table": versions_diff_html(old, new),
            "can_restore": self.has_change_permission(request, template),
        }
        return TemplateResponse(request, "admin/templates_app/prompttemplate/diff.html", context)

    def restore_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        """GET asks for confirmation; POST makes version `number`'s content active as a new version."""
        template = self._template_or_404(request, object_id)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        source = template.versions.filter(number=number).first()
        if source is None:
            raise Http404("No such version.")
        if request.method == "POST":
            version = template_restore(template=template, number=number, created_by=_author(request))
            message = f"Restored version {number} as version {version.number}."
            self.log_change(request, template, message)
            self.message_user(request, message, messages.SUCCESS)
            return HttpResponseRedirect(
                reverse("admin:templates_app_prompttemplate_change", args=[template.pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore {template.name}@{number}?",
            "opts": self.opts,
            "original": template,
            "source": source,
            "messages_json": orjson.dumps(source.messages, option=orjson.OPT_INDENT_2).decode(),
        }
        return TemplateResponse(request, "admin/templates_app/prompttemplate/restore_confirm.html", context)

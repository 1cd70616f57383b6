"""Audit entries in the Django admin: read-only (no add, change or delete). And the admin's
member changes, recorded."""

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AuditEntry
from audit.trail import actor_of, record
from services.admin import MembershipAdmin, WorkspaceAdmin
from services.models import Membership, Workspace


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "workspace", "actor_label", "action", "target_id", "status")
    list_filter = ("action", "status")
    search_fields = ("id", "actor_email", "actor_name", "target_id", "key_prefix", "address")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Members are managed in the Django admin (Oneoff has no page of its own for them), so that is
# where their changes are recorded. ``services`` cannot import the audit trail (it sits below
# it), so its two admins that change memberships are extended and registered again here.


def _record_member(request: HttpRequest, action: str, member: Membership, **details: Any) -> None:
    record(
        actor_of(request),
        member.workspace_id,
        action,
        target_type="user",
        target_id=member.user.get_username(),
        metadata={"role": member.role, **details},
    )


class AuditedMembershipAdmin(MembershipAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = Membership.objects.filter(pk=obj.pk).values_list("role", flat=True).first()
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if before is None:
                _record_member(request, "member.add", obj)
            elif before != obj.role:
                _record_member(request, "member.role", obj, previousRole=before)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            _record_member(request, "member.remove", obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for member in queryset.select_related("user"):
                _record_member(request, "member.remove", member)
            super().delete_queryset(request, queryset)


class AuditedWorkspaceAdmin(WorkspaceAdmin):
    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        before = dict(Membership.objects.filter(workspace=form.instance).values_list("pk", "role"))
        with transaction.atomic():
            super().save_formset(request, form, formset, change)
            for member in formset.new_objects:
                _record_member(request, "member.add", member)
            for member, _fields in formset.changed_objects:
                if before.get(member.pk) != member.role:
                    _record_member(
                        request, "member.role", member, previousRole=before.get(member.pk)
                    )
            for member in formset.deleted_objects:
                _record_member(request, "member.remove", member)


for model, model_admin in (
    (Membership, AuditedMembershipAdmin),
    (Workspace, AuditedWorkspaceAdmin),
):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)

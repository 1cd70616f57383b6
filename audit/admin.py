"""Audit entries in the Django admin: read-only (no add, change or delete)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry


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

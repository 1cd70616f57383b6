from django.contrib import admin

from logstreams.models import ServiceLogStream, WorkspaceLogStream


@admin.register(WorkspaceLogStream)
class WorkspaceLogStreamAdmin(admin.ModelAdmin):
    # Tokens are secrets: set them on the dashboard's log stream page, never shown here.
    list_display = ("workspace", "endpoint", "enabled", "dropped_lines", "last_delivered_at")
    exclude = ("token",)
    readonly_fields = ("dropped_lines", "last_error", "last_error_at", "last_delivered_at")


@admin.register(ServiceLogStream)
class ServiceLogStreamAdmin(admin.ModelAdmin):
    list_display = ("service", "setting", "endpoint")
    exclude = ("token",)

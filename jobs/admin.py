from django.contrib import admin
from django.http import HttpRequest

from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "service", "status", "plan", "created_at", "exit_code")
    list_filter = ("status",)
    search_fields = ("id",)
    exclude = ("env_snapshot",)
    readonly_fields = [f.name for f in Job._meta.fields if f.name != "env_snapshot"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

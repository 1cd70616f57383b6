from django.contrib import admin

from webhooks.models import Webhook


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "workspace", "url", "enabled")
    list_filter = ("enabled",)
    exclude = ("secret",)

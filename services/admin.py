from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from services.models import (
    ApiKey,
    Build,
    EnvVar,
    Membership,
    Plan,
    RegistryCredential,
    Service,
    Workspace,
)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "kind", "memory_mb", "cpu", "price_monthly")
    list_editable = ("price_monthly",)
    list_filter = ("kind",)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "log_retention_days", "created_at")
    search_fields = ("name", "id")
    readonly_fields = ("id",)
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "workspace", "role")
    list_filter = ("role",)
    autocomplete_fields = ("user", "workspace")


class EnvVarForm(forms.ModelForm):
    # Values are write-only here: the widget never renders the stored secret.
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"placeholder": "•••••• (unchanged)"}),
        required=False,
        help_text="Leave empty to keep the current value.",
    )

    class Meta:
        model = EnvVar
        fields = ("key", "value", "secret")

    def clean_value(self) -> str:
        value = self.cleaned_data.get("value", "")
        if not value and self.instance.pk:
            return self.instance.value
        return value


class EnvValueMasking:
    """Staff who may change env vars get the write-only form; view-only staff see ``****``.
    (Django shows every field's value as text to view-only staff, decrypted.)"""

    def _may_change(self, request: HttpRequest) -> bool:
        return request.user.has_perm("services.change_envvar")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if self._may_change(request):
            return ("key", "value", "secret")
        return ("key", "masked_value", "secret")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if self._may_change(request) else ("key", "masked_value", "secret")

    @admin.display(description="value")
    def masked_value(self, obj: EnvVar) -> str:
        return "****"


class EnvVarInline(EnvValueMasking, admin.TabularInline):
    model = EnvVar
    form = EnvVarForm
    extra = 0


@admin.register(EnvVar)
class EnvVarAdmin(EnvValueMasking, admin.ModelAdmin):
    form = EnvVarForm
    list_display = ("key", "service", "updated_at")
    search_fields = ("key", "service__name", "service__id")
    autocomplete_fields = ("service",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("service", *super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        readonly = super().get_readonly_fields(request, obj)
        return ("service", *readonly) if readonly else ()


class RegistryCredentialForm(forms.ModelForm):
    # The token is write-only here as in the API: the widget never renders the stored one.
    auth_token = forms.CharField(
        label="Auth token",
        widget=forms.PasswordInput(render_value=False, attrs={"placeholder": "•••••• (unchanged)"}),
        required=False,
        help_text="Leave empty to keep the current token.",
    )

    class Meta:
        model = RegistryCredential
        fields = ("workspace", "name", "registry", "username", "auth_token")

    def clean_auth_token(self) -> str:
        token = self.cleaned_data.get("auth_token", "")
        if not token and self.instance.pk:
            return self.instance.auth_token
        if not token:
            raise forms.ValidationError("A new credential needs a token.")
        return token


@admin.register(RegistryCredential)
class RegistryCredentialAdmin(admin.ModelAdmin):
    form = RegistryCredentialForm
    list_display = ("name", "id", "registry", "username", "workspace", "updated_at")
    list_filter = ("registry",)
    search_fields = ("name", "id", "username")
    autocomplete_fields = ("workspace",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # View-only staff get the other fields as text: Django would show the token decrypted.
        fields = ("workspace", "name", "registry", "username")
        if request.user.has_perm("services.change_registrycredential"):
            return (*fields, "auth_token")
        return fields


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "type", "plan", "workspace", "suspended", "deleted_at")
    list_filter = ("type", "suspended")
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    # A repository credential is a secret: set it through the repository URL, never shown here.
    exclude = ("repo_credential",)
    autocomplete_fields = ("workspace", "registry_credential")
    inlines = [EnvVarInline]

    def get_queryset(self, request: HttpRequest) -> "models.QuerySet[Service]":
        # Staff see deleted services too (kept so their jobs stay readable; deleted_at says so).
        return Service.all_objects.select_related("plan", "workspace")


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    list_display = ("id", "service", "status", "image_id", "created_at")
    list_filter = ("status",)
    # Every field read-only, and the repository credential (a secret) not shown at all.
    exclude = ("repo_credential",)
    readonly_fields = [f.name for f in Build._meta.fields if f.name != "repo_credential"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "workspace", "read_only", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    exclude = ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are shown once at creation: use the dashboard or createapikey

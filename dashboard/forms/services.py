"""Forms of the service and workspace pages."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from django import forms

from services.models import EnvVar


class EnvVarForm(forms.Form):
    key = forms.CharField(max_length=256, label="Name")
    value = forms.CharField(
        required=False, strip=False, label="Value", widget=forms.Textarea(attrs={"rows": 1})
    )
    secret = forms.BooleanField(
        required=False,
        label="Secret",
        help_text="Mask the value in job logs whatever its length (values of 6 or more "
        "characters are masked anyway).",
    )

    def clean_key(self):
        key = self.cleaned_data["key"].strip()
        if not re.fullmatch(EnvVar.KEY_PATTERN, key):
            raise forms.ValidationError(f"The name {EnvVar.KEY_RULE}.")
        return key

    def clean(self):
        cleaned = super().clean() or {}
        problem = EnvVar.value_problem(cleaned.get("value") or "")
        if problem:
            self.add_error("value", f"{cleaned.get('key') or 'This env var'}: {problem}.")
        return cleaned

    def save(self, service) -> EnvVar:
        var, _ = EnvVar.objects.update_or_create(
            service=service,
            key=self.cleaned_data["key"],
            defaults={"value": self.cleaned_data["value"], "secret": self.cleaned_data["secret"]},
        )
        return var


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Name")
    read_only = forms.BooleanField(required=False, label="Read-only")


class MonthForm(forms.Form):
    month = forms.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", required=False, label="Month")

    def clean_month(self):
        value = self.cleaned_data["month"]
        if not value:
            today = date.today()
            return date(today.year, today.month, 1)
        year, month = map(int, value.split("-"))
        if year < 2000 or year > 2999:
            raise forms.ValidationError("use a month between 2000-01 and 2999-12")
        return date(year, month, 1)

    def bounds(self) -> tuple[datetime, datetime]:
        first = self.cleaned_data["month"]
        nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        return (
            datetime(first.year, first.month, 1, tzinfo=UTC),
            datetime(nxt.year, nxt.month, 1, tzinfo=UTC),
        )


class ConcurrencyForm(forms.Form):
    """A service's ``maxConcurrentJobs``; empty is no limit."""

    max_concurrent_jobs = forms.IntegerField(
        label="Concurrent jobs",
        required=False,
        min_value=1,
        max_value=1000,
        widget=forms.NumberInput(attrs={"placeholder": "no limit"}),
        help_text="Jobs of this service that may run at once; more wait pending in creation "
        "order and start as others end. Empty: no limit.",
    )


class MaskingForm(forms.Form):
    """A service's ``mask_secrets``: env values replaced by ``****`` in its job logs."""

    mask_secrets = forms.BooleanField(
        required=False,
        label="Mask env var values in job logs",
        help_text="Values of 6 or more characters, and every value of a variable marked "
        "secret, become **** as a job's lines are stored: in the log, the download, the log "
        "stream and webhooks. A change applies to jobs that start afterwards.",
    )


class BudgetForm(forms.Form):
    """A workspace's monthly budget in USD; empty is no budget."""

    monthly_budget = forms.DecimalField(
        label="Monthly budget (USD)",
        required=False,
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"placeholder": "no budget", "step": "0.01"}),
        help_text="What this workspace's jobs may cost in a calendar month (UTC). A job that "
        "would pass it is refused; running jobs are never stopped. Empty: no budget.",
    )

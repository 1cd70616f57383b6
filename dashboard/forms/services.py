"""Forms of the service and workspace pages."""

import re
from datetime import UTC, date, datetime

from django import forms

from services.models import EnvVar


class EnvVarForm(forms.Form):
    key = forms.CharField(max_length=256, label="Name")
    value = forms.CharField(
        required=False, strip=False, label="Value", widget=forms.Textarea(attrs={"rows": 1})
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
            defaults={"value": self.cleaned_data["value"]},
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

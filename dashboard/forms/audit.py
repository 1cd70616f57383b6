"""The audit page's filters: every query string field validated here (a bad one is a 400)."""

from datetime import UTC, date, datetime, time, timedelta

from django import forms

from audit.events import ACTIONS
from audit.models import AuditEntry, AuditQuerySet
from services.models import Workspace

PAGE_SIZE = 50
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)


def _families() -> list[tuple[str, str]]:
    families = sorted({action.split(".")[0] for action in ACTIONS})
    return [(f, f"{f} (all)") for f in families if f not in ACTIONS]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("", "Any action"),
            *_families(),
            *((action, f"{action}: {ACTIONS[action][1]}") for action in sorted(ACTIONS)),
        ],
        required=False,
    )
    actor = forms.CharField(max_length=254, required=False, label="Actor (email or key prefix)")
    target = forms.CharField(max_length=300, required=False, label="Target id")
    since = forms.DateField(required=False, label="From")
    until = forms.DateField(required=False, label="To")
    cursor = forms.RegexField(r"^aud-[0-9a-v]{20}$", required=False)

    def __init__(self, *args, workspace: Workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def _day(self, name: str) -> date | None:
        value = self.cleaned_data[name]
        if value is not None and not FIRST_DAY <= value <= LAST_DAY:
            raise forms.ValidationError(f"use a date between {FIRST_DAY} and {LAST_DAY}")
        return value

    def clean_since(self):
        return self._day("since")

    def clean_until(self):
        return self._day("until")

    def clean_cursor(self):
        cursor = self.cleaned_data["cursor"]
        if not cursor:
            return None
        key = (
            AuditEntry.objects.for_workspace(self.workspace)
            .filter(pk=cursor)
            .values_list("created_at", "id")
            .first()
        )
        if key is None:
            raise forms.ValidationError("cursor does not belong to this list")
        return key

    def entries(self) -> AuditQuerySet:
        data = self.cleaned_data
        since, until = data["since"], data["until"]
        return AuditEntry.objects.for_workspace(self.workspace).matching(
            action=data["action"],
            actor=data["actor"].strip(),
            target_id=data["target"].strip(),
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        )

    def page(self) -> tuple[list[AuditEntry], str | None]:
        """One page, newest first, and the cursor of the next (older) page."""
        rows = self.entries().page(self.cleaned_data["cursor"], PAGE_SIZE + 1, oldest_first=False)
        next_cursor = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
        return rows[:PAGE_SIZE], next_cursor

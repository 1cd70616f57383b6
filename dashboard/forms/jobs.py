"""Forms of the Jobs pages: every query string and body is validated here; a bad field is a 400
that names it."""

from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from django import forms

from jobs.models import Job, JobStatus
from services.keyset import keyset_page
from services.models import Service

PAGE_SIZE = 25
LOG_PAGE = 1000
ID_PATTERN = r"^job-[0-9a-v]{20}$"


# The created-date filter's range: any real job's date, with room for the day after the end.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
# Log cursors are line numbers; past this a query parameter is garbage, not a line.
MAX_SEQ = 2**62


class JobFilterForm(forms.Form):
    """Status chips, a created-date range (whole UTC days) and a keyset cursor."""

    status = forms.MultipleChoiceField(choices=JobStatus.choices, required=False)
    created_from = forms.DateField(required=False, label="Created from")
    created_to = forms.DateField(required=False, label="Created to")
    cursor = forms.RegexField(ID_PATTERN, required=False)

    def __init__(self, *args, service: Service, **kwargs):
        super().__init__(*args, **kwargs)
        self.service = service

    def clean_cursor(self):
        cursor = self.cleaned_data["cursor"]
        if not cursor:
            return None
        # The id of the last job of the previous page; the next page goes on after its key.
        key = (
            Job.objects.filter(pk=cursor, service=self.service)
            .values_list("created_at", "id")
            .first()
        )
        if key is None:
            raise forms.ValidationError("cursor does not belong to this list")
        return key

    def _date_in_range(self, name: str):
        value = self.cleaned_data[name]
        if value is not None and not FIRST_DAY <= value <= LAST_DAY:
            raise forms.ValidationError(f"use a date between {FIRST_DAY} and {LAST_DAY}")
        return value

    def clean_created_from(self):
        return self._date_in_range("created_from")

    def clean_created_to(self):
        return self._date_in_range("created_to")

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "must be on or after the start date")
        return data

    @property
    def is_filtered(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("status") or data.get("created_from") or data.get("created_to"))

    def page(self) -> tuple[list[Job], str | None]:
        """One page of the service's jobs, newest first, and the cursor of the next page."""
        data = self.cleaned_data
        jobs = Job.objects.filter(service=self.service).select_related("plan")
        if data["status"]:
            jobs = jobs.filter(status__in=data["status"])
        if data["created_from"]:
            jobs = jobs.filter(created_at__gte=datetime.combine(data["created_from"], time(), UTC))
        if data["created_to"]:
            end = datetime.combine(data["created_to"] + timedelta(days=1), time(), UTC)
            jobs = jobs.filter(created_at__lt=end)
        rows = keyset_page(jobs, after=data["cursor"], limit=PAGE_SIZE + 1)
        next_cursor = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
        return rows[:PAGE_SIZE], next_cursor


class RunJobForm(forms.Form):
    start_command = forms.CharField(
        label="Command",
        strip=False,
        widget=forms.TextInput(
            attrs={"placeholder": "e.g. python manage.py migrate", "autocomplete": "off"}
        ),
    )
    plan = forms.ChoiceField(label="Instance type")
    # Opt-in overrides (the API's timeoutSeconds and envVars).
    timeout_seconds = forms.IntegerField(
        label="Timeout (seconds)",
        required=False,
        min_value=1,
        widget=forms.NumberInput(attrs={"placeholder": "none", "min": 1}),
    )
    env_overrides = forms.CharField(
        label="Env var overrides",
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "KEY=value, one a line", "autocomplete": "off"}
        ),
        help_text="For this job only; the service's env vars stay as they are.",
    )

    # Errors of the one entry point (jobs.launch) name API fields; map them onto this form's.
    FIELDS = {
        "startCommand": "start_command",
        "planId": "plan",
        "timeoutSeconds": "timeout_seconds",
        "envVars": "env_overrides",
    }

    def __init__(self, *args, service: Service, **kwargs):
        kwargs.setdefault("initial", {"plan": service.plan_id})
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["plan"]).choices = [
            (plan.id, f"{plan.name} — {plan.specs}")
            for plan in service.valid_plans().exclude(price_monthly__lte=0)
        ]

    def clean_env_overrides(self) -> list[tuple[str, str]]:
        """``KEY=value`` lines (blank lines skipped; a value may hold ``=``); the keys and values
        are checked by the launch, by the env var API's rules."""
        pairs = []
        for number, line in enumerate(self.cleaned_data["env_overrides"].splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"line {number}: write KEY=value")
            pairs.append((key.strip(), value))
        return pairs

    def add_launch_error(self, error) -> None:
        field = (error.field or "").split("[", 1)[0]
        message = error.message
        if field == "envVars" and "[" in (error.field or ""):
            # envVars[2].key: say which line, as the reader wrote them (blank lines skipped).
            index = int(error.field.split("[", 1)[1].split("]", 1)[0])
            message = f"override {index + 1}: {message}"
        self.add_error(self.FIELDS.get(field), message)


class LogQueryForm(forms.Form):
    """The log viewer's cursors: ``after`` (tail and search paging), ``before`` (load earlier),
    ``q`` (search) and the ``status`` the page last showed (to refresh the summary on change)."""

    after = forms.IntegerField(min_value=0, max_value=MAX_SEQ, required=False)
    before = forms.IntegerField(min_value=0, max_value=MAX_SEQ, required=False)
    q = forms.CharField(max_length=200, required=False, strip=False)
    status = forms.RegexField(r"^[a-z]{1,16}$", required=False)
    # A job page around one line (a permalink ``#LN`` to a line the latest page does not hold),
    # and "load later lines" after such a page (a page of lines, not the live tail).
    line = forms.IntegerField(min_value=1, max_value=MAX_SEQ, required=False)
    later = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        if data.get("after") is not None and data.get("before") is not None:
            raise forms.ValidationError("give either after or before, not both")
        return data

"""Forms of the Jobs pages: every query string and body is validated here; a bad field is a 400
that names it."""

import functools
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django import forms
from django.db import connection

from jobs.logs import search
from jobs.models import Job, JobStatus
from services import prepared
from services.errors import Invalid
from services.keyset import keyset_page, keyset_queryset
from services.models import Plan, Service
from services.prepared import Prepared

PAGE_SIZE = 25
LOG_PAGE = 1000
ID_PATTERN = r"^job-[0-9a-v]{20}$"


# The created-date filter's range: any real job's date, with room for the day after the end.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
# Log cursors are line numbers; past this a query parameter is garbage, not a line.
MAX_SEQ = 2**62


# The status chips count up to this many jobs each ("200+" past it).
COUNT_CAP = 200
# How many unfinished rows a list poll refreshes besides the new ones (the rows a reader loaded).
MAX_POLLED_IDS = 200
TZ_COOKIE = "tz"


def zone_of(name: str | None) -> tzinfo | None:
    """An IANA time zone by name (``Pacific/Kiritimati``), None for an unknown name."""
    if not name or len(name) > 64 or name not in _zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


class JobFilterForm(forms.Form):
    """Status chips, a search of the command, a created-date range (whole days of the reader's
    time zone: ``tz``, else the ``tz`` cookie the page's script sets, else UTC) and a keyset
    cursor."""

    status = forms.MultipleChoiceField(choices=JobStatus.choices, required=False)
    q = forms.CharField(max_length=200, required=False, strip=True, label="Search")
    created_from = forms.DateField(required=False, label="Created from")
    created_to = forms.DateField(required=False, label="Created to")
    tz = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)
    cursor = forms.RegexField(ID_PATTERN, required=False)

    def __init__(self, *args, service: Service, default_tz: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.service = service
        self.default_tz = default_tz if zone_of(default_tz) else None

    def clean_tz(self) -> str:
        name = self.cleaned_data["tz"] or self.default_tz or "UTC"
        if zone_of(name) is None:
            raise forms.ValidationError("use an IANA time zone name, e.g. Europe/Paris")
        return name

    @property
    def zone(self) -> tzinfo:
        return zone_of(self.cleaned_data.get("tz")) or UTC

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
        return bool(
            data.get("status")
            or data.get("q")
            or data.get("created_from")
            or data.get("created_to")
        )

    def _unfiltered_by_status(self):
        """The service's jobs matching every filter but the status chips (what the chips
        count)."""
        data = self.cleaned_data
        jobs = Job.objects.filter(service=self.service)
        if data.get("q"):
            jobs = jobs.filter(start_command__icontains=data["q"])
        zone = self.zone
        if data.get("created_from"):
            start = datetime.combine(data["created_from"], time(), zone)
            jobs = jobs.filter(created_at__gte=start)
        if data.get("created_to"):
            end = datetime.combine(data["created_to"] + timedelta(days=1), time(), zone)
            jobs = jobs.filter(created_at__lt=end)
        return jobs

    def jobs(self):
        jobs = self._unfiltered_by_status().select_related("plan", "created_by")
        if self.cleaned_data.get("status"):
            jobs = jobs.filter(status__in=self.cleaned_data["status"])
        return jobs

    def _bound(self) -> tuple[tuple, dict] | None:
        """The filters as a compiled query's shape and values (``services.prepared``), or None
        for a search by command (its ``icontains`` pattern stays an ordinary queryset)."""
        data = self.cleaned_data
        if data.get("q"):
            return None
        values: dict = {"service_id": self.service.pk}
        zone = self.zone
        if data.get("created_from"):
            values["start"] = datetime.combine(data["created_from"], time(), zone)
        if data.get("created_to"):
            values["end"] = datetime.combine(data["created_to"] + timedelta(days=1), time(), zone)
        shape = ("start" in values, "end" in values)
        return shape, values

    def counts(self) -> dict[str, int]:
        """How many jobs each status chip would show with the other filters as they are, up to
        COUNT_CAP (a chip then says "200+"): each status's count reads at most COUNT_CAP
        entries of the (service, status, created_at) index, so the chips cost the same at
        100,000 jobs as at 100. One query on PostgreSQL (a UNION ALL of the capped selects)."""
        counts = dict.fromkeys(JobStatus.values, 0)
        if not connection.features.supports_slicing_ordering_in_compound:
            # SQLite (the embedded default; no UNION of capped selects): a capped count a
            # status, each reading at most COUNT_CAP index entries, where one GROUP BY counted
            # every job of the service (160 ms a page at 1,000,000 jobs; bench_embedded.py).
            jobs = self._unfiltered_by_status().order_by()
            for value in counts:
                counts[value] = jobs.filter(status=value)[:COUNT_CAP].count()
            return counts
        bound = self._bound()
        if bound is None or connection.vendor != "postgresql":
            sql, params = _capped(self._unfiltered_by_status().order_by()).query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(_grouped(sql), params)
                counts.update(dict(cursor.fetchall()))
        else:
            (has_start, has_end), values = bound
            params = [values["service_id"]]
            params += [values["start"]] if has_start else []
            params += [values["end"]] if has_end else []
            sql = _counts_sql(has_start, has_end, COUNT_CAP)
            rows = prepared.fetch(
                connection, sql, [*params, list(counts)], prepare=prepared.enabled
            )
            counts.update(dict(rows))
        return counts

    def page(self) -> tuple[list[Job], str | None]:
        """One page of the service's jobs, newest first, and the cursor of the next page."""
        after = self.cleaned_data["cursor"]
        bound = self._bound()
        if bound is None:
            rows = keyset_page(self.jobs(), after=after, limit=PAGE_SIZE + 1)
        else:
            shape, values = bound
            statuses = list(self.cleaned_data.get("status") or ())
            if statuses:
                values["statuses"] = statuses
            if after is not None:
                values["after_at"], values["after_id"] = after
            shape = (*shape, len(statuses), after is not None)
            rows = _PAGE.run(shape, **values)
        next_cursor = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
        return rows[:PAGE_SIZE], next_cursor

    def newer_than(self, key: tuple[datetime, str] | None) -> list[Job]:
        """The newest page of jobs created after ``key`` (the newest row a reader has), newest
        first; with no key, the first page."""
        bound = self._bound()
        if bound is None:
            return list(_newer(self.jobs(), key))
        shape, values = bound
        statuses = list(self.cleaned_data.get("status") or ())
        if statuses:
            values["statuses"] = statuses
        if key is not None:
            values["newest_at"], values["newest_id"] = key
        return _NEWER.run((*shape, len(statuses), key is not None), **values)


def _newer(jobs, key: tuple[datetime, str] | None):
    """``jobs`` created after ``key``, newest first, a page of them."""
    if key is not None:
        created_at, pk = key
        # The redundant `created_at >= …` bounds the index range scan (nothing newer reads
        # nothing); the exclude breaks ties.
        jobs = jobs.filter(created_at__gte=created_at).exclude(created_at=created_at, pk__lte=pk)
    return jobs.order_by("-created_at", "-id")[:PAGE_SIZE]


def rows_by_id(service: Service, ids: list[str]) -> list[Job]:
    """The jobs of ``service`` among ``ids`` (a list poll's unfinished rows), as list rows."""
    if not ids:
        return []
    return _ROWS_BY_ID.run(len(ids), service_id=service.pk, ids=ids)


def _filtered(shape: tuple, values: dict):
    """``JobFilterForm._unfiltered_by_status`` for a compiled query (no search by command)."""
    has_start, has_end = shape[:2]
    jobs = Job.objects.filter(service_id=values["service_id"])
    if has_start:
        jobs = jobs.filter(created_at__gte=values["start"])
    if has_end:
        jobs = jobs.filter(created_at__lt=values["end"])
    return jobs


def _capped(jobs):
    """Each status's jobs, up to COUNT_CAP each, in one UNION ALL (what the chips count)."""
    parts = [
        jobs.filter(status=value).values_list("status", flat=True)[:COUNT_CAP]
        for value, _ in JobStatus.choices
    ]
    return parts[0].union(*parts[1:], all=True).order_by()


@functools.cache
def _counts_sql(has_start: bool, has_end: bool, cap: int) -> str:
    """The chips' counts without a search by command, for PostgreSQL: per status, the capped
    count of the (service, status, created_at) index's entries, in one statement whose generic
    plan is those index-only scans, so it is prepared once a connection (0.25 ms to run, against
    0.5 ms to plan and run the UNION ALL of ``_capped`` for its values)."""
    bounds = " AND j.created_at >= %s" if has_start else ""
    bounds += " AND j.created_at < %s" if has_end else ""
    return (
        "SELECT s.status, (SELECT COUNT(*) FROM (SELECT 1 FROM "  # noqa: S608 - constants only
        f"{Job._meta.db_table} AS j WHERE j.service_id = %s{bounds} AND j.status = s.status "
        f"LIMIT {int(cap)}) AS capped) FROM unnest(%s::text[]) AS s(status)"
    )


def _grouped(sql: str) -> str:
    # Django's own SQL with its parameters, grouped.
    return "SELECT status, COUNT(*) FROM (" + sql + ") AS capped GROUP BY status"  # noqa: S608


def _page(shape: tuple, **values):
    statuses, has_cursor = shape[2:]
    jobs = _filtered(shape, values).select_related("plan", "created_by")
    if statuses:
        jobs = jobs.filter(status__in=values["statuses"])
    after = (values["after_at"], values["after_id"]) if has_cursor else None
    return keyset_queryset(jobs, after, PAGE_SIZE + 1)


def _newer_rows(shape: tuple, **values):
    statuses, has_key = shape[2:]
    jobs = _filtered(shape, values).select_related("plan", "created_by")
    if statuses:
        jobs = jobs.filter(status__in=values["statuses"])
    key = (values["newest_at"], values["newest_id"]) if has_key else None
    return _newer(jobs, key)


# The Jobs page's query and its poll's two, compiled once per shape of the filters (issue 20).
_PAGE = Prepared(_page)
_NEWER = Prepared(_newer_rows)
_ROWS_BY_ID = Prepared(
    lambda count, *, service_id, ids: Job.objects.filter(
        service_id=service_id, pk__in=ids
    ).select_related("plan", "created_by")
)


class ListHeadForm(forms.Form):
    """A list poll's cursors: ``newest`` (the id of the newest row the page has) and ``ids``
    (the unfinished rows it shows, comma-separated)."""

    newest = forms.RegexField(ID_PATTERN, required=False)
    ids = forms.CharField(required=False, max_length=MAX_POLLED_IDS * 26)

    def __init__(self, *args, service: Service, **kwargs):
        super().__init__(*args, **kwargs)
        self.service = service

    def clean_newest(self):
        newest = self.cleaned_data["newest"]
        if not newest:
            return None
        key = (
            Job.objects.filter(pk=newest, service=self.service)
            .values_list("created_at", "id")
            .first()
        )
        if key is None:
            raise forms.ValidationError("newest does not belong to this list")
        return key

    def clean_ids(self) -> list[str]:
        ids = [part for part in self.cleaned_data["ids"].split(",") if part]
        if len(ids) > MAX_POLLED_IDS:
            raise forms.ValidationError(f"at most {MAX_POLLED_IDS} ids")
        pattern = forms.RegexField(ID_PATTERN)
        for value in ids:
            pattern.clean(value)
        return ids


def hourly_price(plan) -> str:
    """A plan's price per hour of job ("$0.0104/h"): its monthly price over a 30-day month,
    with three significant digits below a cent."""
    hourly = plan.rate_per_second * 3600
    if hourly >= 1:
        return f"${hourly:,.2f}/h"
    if hourly >= Decimal("0.001"):
        return f"${float(hourly):.3g}/h"
    return f"${hourly.quantize(Decimal('0.000001')).normalize():f}/h"


def _plans(shape, *, kind: str):
    """The plans a job of a service of ``kind`` can run on: ``Service.valid_plans`` but the
    free ones."""
    return Plan.objects.filter(kind=kind).exclude(price_monthly__lte=0)


# Compiled once (services.prepared): the run form is on every Jobs page.
_PLANS = Prepared(_plans)


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
    # "Rerun with changes": the job this one reruns (its page links to the new one).
    rerun_of = forms.RegexField(ID_PATTERN, required=False, widget=forms.HiddenInput)

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
            (plan.id, f"{plan.name} — {plan.specs} — {hourly_price(plan)}")
            for plan in _PLANS.run(kind=service.plan_kind)
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

    def clean_q(self) -> str:
        """A search of the log in ``GET /v1/logs`` ``text`` syntax: plain text (matched as
        written, case included), ``*`` wildcards, or an RE2 ``/regular expression/``."""
        q = self.cleaned_data["q"]
        if q.strip():
            try:
                search.parse("q", [q])
            except Invalid as exc:
                raise forms.ValidationError(exc.message) from None
        return q

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        if data.get("after") is not None and data.get("before") is not None:
            raise forms.ValidationError("give either after or before, not both")
        return data

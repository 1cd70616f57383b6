"""Reading logs back: Render's ``GET /v1/logs`` pages over job and build lines, the values of
a label (``GET /v1/logs/values``), and a whole job log for downloads."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DataError, connection, transaction
from django.db.models import Q, QuerySet

from jobs.logs import index, marks, search
from jobs.models import Job, JobLogLine, LogStream
from services.errors import Invalid
from services.models import Build, BuildLogLine, Service

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
ONE_US = timedelta(microseconds=1)

# Render's label values for what Oneoff stores: a job's stdout is ``info``, its stderr
# ``error``; a build's output (one stream) is ``info``. Job lines are of type ``app``, build
# lines of type ``build``.
LEVELS = {LogStream.STDOUT: "info", LogStream.STDERR: "error"}
TYPES = ("app", "build")


@dataclass
class LogQuery:
    """Which lines: those of ``jobs``, of ``builds`` and of every job and build of
    ``services``, in ``[start, end]``, narrowed by Render's filters (raw values, see
    ``jobs.logs.search``)."""

    jobs: list[Job]
    start: datetime
    end: datetime
    direction: str = "backward"
    text: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    builds: list[Build] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)


@dataclass
class _Source:
    """The matching lines of one table: ``kind`` is their ``type`` label."""

    kind: str
    rows: QuerySet
    owner: str  # the column naming the job or build
    single: bool  # one job only: its times are unique and increase with its seqs
    # One job's lines searched by ``text``: its search chunks narrow where to look, in the range
    # of seqs that holds the window (``marks.lines_filter``).
    searched: tuple[Job, list[search.Term], datetime, datetime, Q] | None = None

    def columns(self) -> tuple[str, ...]:
        if self.kind == "app":
            return ("job_id", "seq", "timestamp", "stream", "text", "job_id")
        return ("build_id", "seq", "timestamp", "seq", "text", "build__service_id")

    def order(self, forward: bool) -> tuple[str, ...]:
        # One job's seqs are in the order of its times, and the primary key yields them so.
        names = ("seq",) if self.single else ("timestamp", self.owner, "seq")
        return names if forward else tuple(f"-{name}" for name in names)


def _owner_ids(
    explicit: list[str],
    services: list[Service],
    model: type[Job] | type[Build],
    instances: list[search.Term],
) -> Any:
    """The ids of the jobs (builds) asked for, by id or by service: a subquery, or a list when
    an ``instance`` filter must look at each id."""
    by_service = model.objects.filter(service__in=services).values_list("pk", flat=True)
    if not instances:
        if not services:
            return explicit
        return model.objects.filter(Q(pk__in=explicit) | Q(service__in=services)).values("pk")
    matches = search.label_matcher(instances)
    return [pk for pk in [*explicit, *(by_service if services else [])] if matches(pk)]


def _sources(q: LogQuery, *, narrow: bool = True) -> list[_Source]:
    """The tables and rows ``q`` reads; ``narrow``: job lines by their marks' ranges of seqs
    (a query), else by their times alone (for ``check``, which runs no query)."""
    text = search.parse("text", q.text)
    want_level = search.label_matcher(search.parse("level", q.levels))
    want_type = search.label_matcher(search.parse("type", q.types))
    instances = search.parse("instance", q.instances)
    sources = []
    streams = [stream for stream, name in LEVELS.items() if want_level(name)]
    if want_type("app") and streams and (q.jobs or q.services):
        ids = _owner_ids([job.pk for job in q.jobs], q.services, Job, instances)
        in_window = Q(timestamp__gte=q.start, timestamp__lte=q.end)
        if len(streams) < len(LEVELS):
            in_window &= Q(stream__in=streams)
        if not narrow:
            sources.append(_Source("app", JobLogLine.objects.filter(in_window), "job_id", False))
        elif len(q.jobs) == 1 and not q.services and not instances:
            job = q.jobs[0]
            span = marks.lines_filter(job.pk, marks.ranges([job.pk], q.start, q.end).get(job.pk))
            rows = JobLogLine.objects.filter(span, in_window)
            # Chunks hold text only: a search that also filters by level reads the lines.
            text_only = text and len(streams) == len(LEVELS)
            searched = (job, text, q.start, q.end, span) if text_only else None
            sources.append(_Source("app", rows, "job_id", True, searched))
        else:
            sources += _job_sources(ids, q.start, q.end, in_window)
    if want_type("build") and want_level("info") and (q.builds or q.services):
        ids = _owner_ids([build.pk for build in q.builds], q.services, Build, instances)
        build_rows = BuildLogLine.objects.filter(
            build_id__in=ids, timestamp__gte=q.start, timestamp__lte=q.end
        )
        sources.append(_Source("build", build_rows, "build_id", False))
    for source in sources:
        for lookup in search.text_lookups(text):
            source.rows = source.rows.filter(**lookup)
    return sources


def _job_sources(ids: Any, start: datetime, end: datetime, in_window: Q) -> list[_Source]:
    """The window's lines of several jobs (``ids``: a list, or a subquery): those of the jobs
    with marks, each through its own range of seqs, and those of the others (small logs) whole;
    two queries, so that an ``IN (subquery)`` never sits under an ``OR``."""
    spans = marks.ranges(ids, start, end)
    found = [
        _Source(
            "app",
            JobLogLine.objects.filter(in_window, job_id__in=_without(ids, spans)),
            "job_id",
            False,
        )
    ]
    wanted = [
        marks.lines_filter(job_id, (first, stop))
        for job_id, (first, stop) in spans.items()
        if stop is None or first < stop
    ]
    if wanted:
        either = wanted[0]
        for span in wanted[1:]:
            either |= span
        found.append(_Source("app", JobLogLine.objects.filter(either, in_window), "job_id", False))
    return found


def _without(ids: Any, spans: dict) -> Any:
    if not spans:
        return ids
    if isinstance(ids, QuerySet):
        return ids.exclude(pk__in=list(spans))
    return [job_id for job_id in ids if job_id not in spans]


def check(q: LogQuery) -> None:
    """Raise ``Invalid`` naming the filter if one of ``q``'s is bad (no query runs)."""
    _sources(q, narrow=False)


def _sort_key(line: tuple) -> tuple:
    kind, owner, seq, timestamp = line[0], line[1], line[2], line[3]
    return (timestamp, kind, owner, seq)


def _fetch(source: _Source, rows: QuerySet, forward: bool, limit: int | None) -> list[tuple]:
    if source.searched is not None and limit is not None and index.has_chunks(source.searched[0]):
        job, terms, start, end, span = source.searched
        # A job's timestamps increase with its seqs: the window is a range of seqs.
        times = JobLogLine.objects.filter(span).values_list("seq", flat=True)
        first = times.filter(timestamp__gte=start).order_by("seq").first()
        last = times.filter(timestamp__lte=end).order_by("-seq").first()
        if first is None or last is None:
            return []
        seqs = index.matching_seqs(
            rows, job, terms, forward=forward, limit=limit, first=first, last=last
        )
        if seqs is not None:
            rows = rows.filter(seq__in=seqs)
    found = rows.order_by(*source.order(forward)).values_list(*source.columns())
    if limit is not None:
        found = found[:limit]
    return [(source.kind, *row) for row in found]


def _run(callable_: Any, sources: list[_Source] | None = None) -> Any:
    """``callable_()`` in one transaction, bounded in time (``search.bounded``); PostgreSQL
    refusing an expression RE2 accepted (a construct its engine lacks, such as a named group) is
    a 400 naming ``text``. ``sources``: what it reads (None: one job's lines)."""
    postgres = connection.vendor == "postgresql"
    try:
        with transaction.atomic():
            if postgres:
                # A job's lines arrive faster than autovacuum's statistics: with stale estimates
                # the planner prefers a bitmap scan that sorts every line in the window for each
                # page. The primary key already yields one job's lines in order; make it take
                # that. Several jobs' lines are sorted anyway, and their ranges of seqs are
                # ORed in a bitmap: there it stays on (SET LOCAL outlives a savepoint, so say
                # which each time, and put it back after).
                bitmaps = "off" if all(s.single for s in sources or ()) else "on"
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL enable_bitmapscan = {bitmaps}")
            with search.bounded():
                result = callable_()
            if postgres:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL enable_bitmapscan TO DEFAULT")
            return result
    except DataError as exc:
        if type(exc.__cause__).__name__ == "InvalidRegularExpression":
            raise Invalid(
                "text", f"PostgreSQL cannot run this expression: {exc.__cause__}"
            ) from None
        raise


def search_job(job: Job, value: str, *, after: int | None, limit: int) -> list[int]:
    """The seqs of the first ``limit`` lines of ``job`` after seq ``after`` that match
    ``value``, a ``GET /v1/logs`` ``text`` value (the log viewer's search: the same lookups,
    chunks and time bound). Raises ``Invalid`` naming ``text`` for a bad expression and
    ``search.SearchTooSlow`` past ``LOGS_QUERY_TIMEOUT``."""
    terms = search.parse("text", [value])
    rows = JobLogLine.objects.filter(job_id=job.pk)
    for lookup in search.text_lookups(terms):
        rows = rows.filter(**lookup)
    first = 0 if after is None else after + 1

    def seqs() -> list[int]:
        found = index.matching_seqs(rows, job, terms, forward=True, limit=limit, first=first)
        if found is None:
            found = list(
                rows.filter(seq__gte=first).order_by("seq").values_list("seq", flat=True)[:limit]
            )
        return found

    return _run(seqs)


def query_logs(q: LogQuery) -> dict:
    """One page of Render's time-window pagination over the lines ``q`` selects.

    The window is ``[start, end]``. Backward pages go newest first and the next page's window
    ends just before the oldest line returned; forward pages go oldest first and the next window
    starts just after the newest line. A page never ends between two lines of equal timestamp
    (a job's are unique, but two jobs', or a build's, may be equal), so paging returns every line
    exactly once.
    """
    sources = _sources(q)
    forward = q.direction == "forward"

    def page_of_lines() -> tuple[list[tuple], bool]:
        page: list[tuple] = []
        for source in sources:
            page += _fetch(source, source.rows, forward, q.limit + 1)
        page.sort(key=_sort_key, reverse=not forward)
        has_more = len(page) > q.limit
        if has_more:
            boundary = page[q.limit - 1][3]
            page = page[: q.limit]
            if len(sources) > 1 or not sources[0].single:
                # Lines of the same time: never split them across pages.
                seen = {line[:3] for line in page}
                for source in sources:
                    page += [
                        line
                        for line in _fetch(
                            source, source.rows.filter(timestamp=boundary), forward, None
                        )
                        if line[:3] not in seen
                    ]
                page.sort(key=_sort_key, reverse=not forward)
        return page, has_more

    page, has_more = _run(page_of_lines, sources) if sources else ([], False)
    if forward:
        next_start = page[-1][3] + ONE_US if page else q.start
        next_end = q.end
    else:
        next_start = q.start
        next_end = page[-1][3] - ONE_US if page else q.end
    return {
        "hasMore": has_more,
        "nextStartTime": next_start.isoformat(),
        "nextEndTime": next_end.isoformat(),
        "logs": [log_entry(*line) for line in page],
    }


def log_entry(
    kind: str, owner: str, seq: int, timestamp: datetime, stream: int, text: str, resource: str
) -> dict:
    """A line in Render's ``Log`` shape: a job line's resource is the job (as on Render), a
    build line's the build's service; the instance is the job or the build."""
    level = "info" if kind == "build" else LEVELS.get(LogStream(stream), "info")
    return {
        "id": f"{owner}-{seq}",
        "message": text,
        "timestamp": timestamp.isoformat(),
        "labels": [
            {"name": "resource", "value": resource},
            {"name": "instance", "value": owner},
            {"name": "level", "value": level},
            {"name": "type", "value": kind},
        ],
    }


# Labels of Render's ``GET /v1/logs/values`` Oneoff has no lines for (HTTP request logs).
REQUEST_LABELS = ("host", "statusCode", "method")


def label_values(q: LogQuery, label: str, limit: int) -> list[str]:
    """The distinct values of ``label`` among the lines ``q`` selects (at most ``limit``)."""
    if label in REQUEST_LABELS:
        return []
    sources = _sources(q)

    def values() -> list[str]:
        found: set[str] = set()
        for source in sources:
            if label == "type":
                if source.rows.exists():
                    found.add(source.kind)
            elif label == "level":
                if source.kind == "build":
                    if source.rows.exists():
                        found.add("info")
                else:
                    streams = source.rows.order_by().values_list("stream", flat=True).distinct()
                    found |= {LEVELS.get(LogStream(s), "info") for s in streams}
            else:
                column = source.owner
                if label == "resource" and source.kind == "build":
                    column = "build__service_id"
                found |= set(
                    source.rows.order_by(column).values_list(column, flat=True).distinct()[:limit]
                )
        return sorted(found)[:limit]

    return _run(values, sources) if sources else []


def line_batches(job_pk: str, batch: int = 5000) -> Iterator[list[tuple]]:
    """Every stored line of a job in order, as ``(seq, timestamp, stream, text)`` rows, in
    keyset batches of ``batch`` (constant memory, for downloads)."""
    after = -1
    while True:
        rows = list(
            JobLogLine.objects.filter(job_id=job_pk, seq__gt=after)
            .order_by("seq")
            .values_list("seq", "timestamp", "stream", "text")[:batch]
        )
        if not rows:
            return
        yield rows
        after = rows[-1][0]

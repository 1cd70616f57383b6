"""Searching a big log fast without slowing its ingest.

A trigram index on every log line made a search of a 1,000,000-line log fast, but it made
storing lines 2.7 to 6 times slower, and ingest is the path that must keep up with a chatty job.
So lines are stored as they are, and afterwards, off that path, a periodic task (``index_due``)
copies each big log's lines into *chunks*: ``LOG_INDEX_CHUNK_LINES`` consecutive lines joined by
newlines, in ``JobLogChunk``, whose one index is a GIN over (job, first seq, text) with
btree_gin and pg_trgm. A chunk is dense (line N of its text is seq ``first_seq + N``), so a
search (``matching_seqs``) reads, in the direction asked:

- the lines not in a chunk yet (the tail of a running job: at most a few chunks' worth), and the
  first ``SCAN_WINDOW`` lines of the chunked part, directly: a frequent term fills its page
  there, without asking the index about every chunk;
- then the chunked part, in stretches of ``WALK_CHUNKS`` chunks and twice as many each time
  after: the index picks the chunks of that
  stretch that may match, and the matching lines' seqs are read off their text.

Every line is checked with the conditions of ``GET /v1/logs``'s lookups (``jobs.logs.search``):
the chunks only narrow where to look, and the results are exactly those of a scan. A chunk's
regular expression runs newline-sensitive (``(?n)``: ``^`` and ``$`` at each line, ``.`` never
across a newline), so a chunk matches whenever one of its lines does; an expression that could
tell the difference (``\\A``, ``\\z``, flags other than ``i``) is left to a scan, as is a search
that filters by more than text (the logs API's ``level``).

PostgreSQL only; on SQLite (the embedded default) a search scans, as before. Small logs (under
``LOG_INDEX_MIN_LINES``) are never chunked: scanning them is already fast.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.logs import search
from jobs.models import Job, JobLogChunk, JobLogLine, JobStatus

log = logging.getLogger(__name__)

SCAN_WINDOW = 5_000  # lines read directly before the index is asked
LAST_SEQ = 2**62
UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING)
# Finished jobs looked at by the periodic pass (by creation, through the status index): a job
# whose last lines were missed longer than this stays searchable, by a scan.
LOOKBACK = timedelta(days=2)


def enabled() -> bool:
    return connection.vendor == "postgresql" and settings.LOG_INDEX_MIN_LINES > 0


def has_chunks(job: Job) -> bool:
    """Whether a search of ``job``'s log can use chunks (else it scans)."""
    return enabled() and job.log_indexed_through is not None


# --- writing chunks ----------------------------------------------------------------------------


_BUILD = """
WITH picked AS (
    SELECT seq, text FROM {lines} WHERE job_id = %(job)s AND seq > %(after)s
    ORDER BY seq LIMIT %(limit)s
), numbered AS (
    SELECT seq, text, (row_number() OVER (ORDER BY seq) - 1) / %(chunk)s AS bucket FROM picked
)
INSERT INTO {chunks} (job_id, first_seq, last_seq, text)
SELECT %(job)s, min(seq), max(seq), string_agg(text, E'\\n' ORDER BY seq)
FROM numbered GROUP BY bucket
HAVING (count(*) = %(chunk)s OR %(final)s)
    -- Dense: line N of the text is seq first_seq + N (a search reads seqs off the text).
    AND max(seq) - min(seq) + 1 = count(*) AND bool_and(strpos(text, E'\\n') = 0)
RETURNING first_seq, last_seq
"""

BATCH_CHUNKS = 500  # chunks per transaction


def index_job(job_id: str) -> int:
    """Chunk the lines of ``job_id`` not in a chunk yet: whole chunks while it runs, the rest
    too once it has finished. Returns the lines chunked. Two passes never chunk the same
    lines: each batch holds the job's advisory lock and rereads where the last one ended."""
    if not enabled():
        return 0
    size = settings.LOG_INDEX_CHUNK_LINES
    sql = _BUILD.format(lines=JobLogLine._meta.db_table, chunks=JobLogChunk._meta.db_table)
    done = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtext(%s))", [f"oneoff-log-index:{job_id}"]
                )
                if not cursor.fetchone()[0]:
                    return done  # another pass is at it
            job = (
                Job.objects.filter(pk=job_id, logs_purged_at__isnull=True)
                .values("status", "log_indexed_through")
                .first()
            )
            if job is None:
                return done
            after = job["log_indexed_through"]
            after = -1 if after is None else after
            limit = BATCH_CHUNKS * size
            with connection.cursor() as cursor:
                cursor.execute(
                    sql,
                    {
                        "job": job_id,
                        "after": after,
                        "limit": limit,
                        "chunk": size,
                        "final": job["status"] not in UNFINISHED,
                    },
                )
                spans = sorted(cursor.fetchall())
            # Chunks must follow one another from where the last ended: the first that does
            # not (a gap in the seqs: not seen in practice) and all after it are not kept, and
            # the lines from there on stay searchable by a scan.
            through, kept, lines = after, 0, 0
            for first_seq, last_seq in spans:
                # A log's first chunk may start past 0 (its oldest lines expired).
                if first_seq != through + 1 and not (through == -1 and first_seq > 0):
                    break
                through, kept, lines = last_seq, kept + 1, lines + last_seq - first_seq + 1
            if kept < len(spans):
                JobLogChunk.objects.filter(job_id=job_id, first_seq__gt=through).delete()
                log.warning(
                    "log of %s has a gap after seq %d: not chunked past it", job_id, through
                )
            if not kept:
                return done
            Job.objects.filter(pk=job_id).update(log_indexed_through=through)
            done += lines
        if len(spans) < BATCH_CHUNKS or kept < len(spans):
            return done


def due_jobs() -> QuerySet[Job]:
    """Jobs with a big log and lines past their last chunk: unfinished ones with at least a
    chunk's worth, recently created finished ones with any."""
    size = settings.LOG_INDEX_CHUNK_LINES
    unindexed = Q(log_indexed_through__isnull=True)
    recent = timezone.now() - LOOKBACK
    return (
        Job.objects.filter(log_line_count__gte=settings.LOG_INDEX_MIN_LINES)
        .filter(logs_purged_at__isnull=True)
        .filter(
            Q(status__in=UNFINISHED)
            & Q(log_line_count__gte=Coalesce(F("log_indexed_through"), 0) + size)
            | Q(status__in=[s for s in JobStatus.values if s not in UNFINISHED])
            & Q(created_at__gte=recent)
            & (unindexed | Q(log_line_count__gt=F("log_indexed_through") + 1))
        )
        .order_by()
    )


def index_due() -> int:
    """One periodic pass: chunk every due job's new lines. Returns the lines chunked."""
    if not enabled():
        return 0
    total = 0
    for job_id in due_jobs().values_list("pk", flat=True):
        total += index_job(job_id)
    if total:
        log.info("chunked %d log lines for search", total)
    return total


def forget(job_ids: list[str]) -> None:
    """Drop the chunks of jobs whose lines were purged (their text must go with the lines);
    what lines remain are chunked again by the next pass."""
    JobLogChunk.objects.filter(job_id__in=job_ids).delete()
    Job.objects.filter(pk__in=job_ids).update(log_indexed_through=None)


# --- searching ---------------------------------------------------------------------------------


_FLAGS = re.compile(r"^\(\?([a-zA-Z]+)\)")
_WHOLE_TEXT = re.compile(r"\\[AzZ]")


def _predicates(terms: list[search.Term]) -> tuple[list[str], list[str], list[str]] | None:
    """SQL conditions on a chunk's text (``c.text``) that hold whenever one of its lines
    (``t.line``) matches every term, the conditions on a line (those of ``GET /v1/logs``'s
    lookups), and their parameters; None when a term cannot be put so (then a scan)."""
    chunk, line, params = [], [], []
    like = connection.ops.prep_for_like_query
    for term in terms:
        if term.regex is None:
            chunk.append("c.text LIKE %s")
            params.append(f"%{like(term.value)}%")
            continue
        expression = search.for_postgresql(term.regex)
        flags = ""
        match = _FLAGS.match(expression)
        if match:
            flags, rest = match.group(1), expression[match.end() :]
        else:
            rest = expression
        if set(flags) - {"i"} or _WHOLE_TEXT.search(rest):
            return None
        chunk.append("c.text ~ %s")
        params.append(f"(?n{flags}){rest}")  # newline-sensitive: ^ $ . at each line
    line_params = []
    for term in terms:
        if term.regex is None:
            line.append("t.line LIKE %s")
            line_params.append(f"%{like(term.value)}%")
        else:
            line.append("t.line ~ %s")
            line_params.append(search.for_postgresql(term.regex))
    return chunk + line, params, line_params


WALK_CHUNKS = 2_000  # chunks in the first stretch a query looks at (then twice as many each)

_MATCHES = """
SELECT c.first_seq + t.ord - 1 AS seq
FROM {chunks} c, unnest(string_to_array(c.text, E'\\n')) WITH ORDINALITY AS t(line, ord)
WHERE c.job_id = %s AND c.first_seq BETWEEN %s AND %s AND {where}
    AND c.first_seq + t.ord - 1 BETWEEN %s AND %s
ORDER BY 1 {order} LIMIT %s
"""


def matching_seqs(
    rows: QuerySet,
    job: Job,
    terms: list[search.Term],
    *,
    forward: bool,
    limit: int,
    first: int = 0,
    last: int = LAST_SEQ,
) -> list[int] | None:
    """The seqs of the first ``limit`` lines of ``rows`` (one job's lines filtered by the
    terms' lookups and nothing else) in ``[first, last]``, in the direction asked; None when
    the chunks cannot help (not PostgreSQL, no terms, no chunk yet, a term they cannot
    narrow): then read ``rows`` as they are. Runs in the caller's transaction.

    In order: the lines not chunked yet (backward) or the first ``SCAN_WINDOW`` lines
    (forward), read directly, so a frequent term fills its page without the index; then the
    chunked lines, ``WALK_CHUNKS`` chunks a query, where the index picks the chunks that may
    match and the lines are read off their text with the same conditions."""
    indexed = job.log_indexed_through
    if not terms or indexed is None or not has_chunks(job):
        return None
    predicates = _predicates(terms)
    if predicates is None:
        return None
    where, chunk_params, line_params = predicates
    through = min(indexed, last)
    order = "seq" if forward else "-seq"
    found: list[int] = []

    def read(low: int, high: int) -> None:
        if low <= high and len(found) < limit:
            found.extend(
                rows.filter(seq__gte=low, seq__lte=high)
                .order_by(order)
                .values_list("seq", flat=True)[: limit - len(found)]
            )

    sql = _MATCHES.format(
        chunks=JobLogChunk._meta.db_table,
        where=" AND ".join(where),
        order="ASC" if forward else "DESC",
    )
    size = settings.LOG_INDEX_CHUNK_LINES
    step = WALK_CHUNKS * size

    def stretches(low: int, high: int) -> Iterator[tuple[int, int]]:
        """``[low, high]`` in stretches from the end the search starts at, each twice the
        last: a term that is found often fills its page in the first, a rare one is looked up
        in a few queries."""
        width = step
        while low <= high:
            if forward:
                yield low, min(low + width - 1, high)
                low += width
            else:
                yield max(high - width + 1, low), high
                high -= width
            width *= 2

    def walk(low: int, high: int) -> None:
        with connection.cursor() as cursor:
            # Chunks come by a bitmap scan of the GIN index, the only way to use one (the
            # logs' reads turn bitmap scans off). The planner does not count reading a chunk's
            # text out of line (TOAST), so it reckons scanning every chunk cheap: not so.
            cursor.execute("SET LOCAL enable_bitmapscan = on")
            cursor.execute("SET LOCAL enable_seqscan = off")
            try:
                for a, b in stretches(low, high):
                    if len(found) >= limit:
                        break
                    # A chunk starts at most a chunk before ``a``: first_seq bounds the query.
                    cursor.execute(
                        sql,
                        [
                            job.pk,
                            a - size + 1,
                            b,
                            *chunk_params,
                            *line_params,
                            a,
                            b,
                            limit - len(found),
                        ],
                    )
                    found.extend(row[0] for row in cursor.fetchall())
            finally:
                cursor.execute("SET LOCAL enable_seqscan = on")
                cursor.execute("SET LOCAL enable_bitmapscan = off")

    if forward:
        window_end = min(first + SCAN_WINDOW - 1, through)
        read(first, window_end)
        walk(window_end + 1, through)
        read(max(first, through + 1), last)
    else:
        read(max(first, indexed + 1), last)
        window_start = max(first, through - SCAN_WINDOW + 1)
        read(window_start, through)
        walk(first, window_start - 1)
    return found[:limit]

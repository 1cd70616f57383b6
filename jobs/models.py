"""Jobs, their env snapshots and their log lines."""

import hashlib
import hmac
import json
import math
from datetime import datetime, timedelta
from typing import Self

from django.conf import settings
from django.db import models
from django.utils import timezone

from services.crypto import EncryptedTextField
from services.models import Build, Plan, PublicIdField, Service, Workspace


class EnvSnapshot(models.Model):
    """An immutable copy of a service's env vars, taken when a job is created."""

    service = models.ForeignKey(Service, models.CASCADE, related_name="env_snapshots")
    data = EncryptedTextField(help_text="JSON object of the env vars, encrypted at rest.")
    digest = models.CharField(
        max_length=64, help_text="Keyed hash of the snapshot: equal digests, equal env."
    )
    # The keys that were marked secret when the snapshot was taken: log masking
    # (jobs.logs.mask) masks their values whatever their length, even if the mark changes since.
    secret_keys = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"env of {self.service_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def capture(cls, service: Service, overrides: dict[str, str] | None = None) -> "EnvSnapshot":
        """The service's env vars now, with a job's ``overrides`` (added, or replacing the
        service's value of the same key) in the snapshot and its digest, never in the
        service's own env vars."""
        values, secret_keys = service.env_with_secret_keys()
        values.update(overrides or {})
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        digest = hmac.new(
            settings.ENV_DIGEST_KEY.encode(), canonical.encode(), hashlib.sha256
        ).hexdigest()
        return cls.objects.create(
            service=service, data=canonical, digest=digest, secret_keys=secret_keys
        )

    @property
    def values(self) -> dict[str, str]:
        return json.loads(self.data)


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING)


class JobQuerySet(models.QuerySet):
    def unfinished(self) -> Self:
        return self.filter(status__in=UNFINISHED)


class Job(models.Model):
    id = PublicIdField(prefix="job")
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="jobs")
    service = models.ForeignKey(Service, models.CASCADE, related_name="jobs")
    start_command = models.TextField()
    plan = models.ForeignKey(Plan, models.PROTECT, related_name="jobs")
    build = models.ForeignKey(Build, models.PROTECT, related_name="jobs")
    env_snapshot = models.ForeignKey(EnvSnapshot, models.PROTECT, related_name="jobs")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    # How it ended, in the shape of Render's job_run_ended reason (built and put in words only
    # in jobs/reasons.py).
    reason = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    billed_seconds = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # Runner bookkeeping.
    host = models.CharField(max_length=200, blank=True, help_text="Runner host that claimed it.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    container_id = models.CharField(max_length=80, blank=True)
    # When the last start message was sent (the enqueue, or a retry of start_job): the sweep
    # sends another only once this is older than runner.START_MESSAGE_LIVE, so each pending job
    # has one outstanding start message, however long the Docker Engine stays away.
    start_enqueued_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Why a pending job waits.")
    # Per-job overrides (API extensions ``timeoutSeconds`` and ``envVars``). The override values
    # live only in the (encrypted) env snapshot; the job keeps their keys, which anyone who may
    # read the job may see, and which a rerun uses to carry the values over.
    timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The job's own runtime limit (at most JOB_MAX_RUNTIME)."
    )
    env_override_keys = models.JSONField(default=list, blank=True)
    # A rerun (API extensions ``rerunOf`` and ``exact``): the job it reran, and whether it ran
    # that job's own image and env snapshot (exact) or the service's latest (on latest).
    rerun_of = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="reruns"
    )
    exact = models.BooleanField(
        default=False, help_text="Reran its original's build and env snapshot, not the latest."
    )
    # The last time a start found this job waiting for a slot of its service's
    # ``max_concurrent_jobs``: JOB_START_TIMEOUT counts from here, not from its creation, so a
    # job queued behind long jobs of its own service never fails for waiting its turn.
    slot_waited_at = models.DateTimeField(null=True, blank=True)
    # Log bookkeeping: the last stored Docker log message (nanoseconds since the epoch) and how
    # many messages carried exactly that timestamp, so a restarted follower resumes without gap
    # or repeat.
    log_cursor_ns = models.BigIntegerField(default=0)
    log_cursor_count = models.PositiveIntegerField(default=0)
    log_line_count = models.PositiveBigIntegerField(default=0)
    # The last seq whose line is in a search chunk (``JobLogChunk``; None: no chunk yet).
    log_indexed_through = models.BigIntegerField(null=True, blank=True)
    log_bytes = models.PositiveBigIntegerField(default=0)
    log_dropped_bytes = models.PositiveBigIntegerField(default=0)
    logs_purged_at = models.DateTimeField(null=True, blank=True)
    # What it used (jobs/usage.py): the container's peak memory (the kernel's high-water mark of
    # its memory cgroup) and CPU time, null until the first reading. The time series is in
    # JobUsage, so that lists of jobs never load it.
    peak_memory_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["service", "-created_at", "-id"], name="job_list"),
            models.Index(
                fields=["service", "status", "-created_at", "-id"], name="job_list_status"
            ),
            models.Index(fields=["status", "created_at"], name="job_status"),
            # A workspace's spend this month (jobs.budget).
            models.Index(fields=["workspace", "finished_at"], name="job_workspace_finished"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def runtime_limit(self) -> int:
        """Seconds this job may run: its own ``timeout_seconds``, never past JOB_MAX_RUNTIME."""
        limit = settings.JOB_MAX_RUNTIME
        return min(self.timeout_seconds, limit) if self.timeout_seconds else limit

    @property
    def start_waits_since(self) -> datetime:
        """Where JOB_START_TIMEOUT counts from: creation, or the last time the job was found
        waiting for a concurrency slot of its service (waiting one's turn is not a failure)."""
        return max(self.created_at, self.slot_waited_at or self.created_at)

    def override_values(self) -> dict[str, str]:
        """The job's env overrides with their values (from its snapshot): what a rerun keeps."""
        if not self.env_override_keys:
            return {}
        values = self.env_snapshot.values
        return {key: values[key] for key in self.env_override_keys if key in values}

    def bill(self, finished_at: datetime) -> None:
        """Set ``billed_seconds`` and ``cost`` for a run that ended at ``finished_at``: whole
        seconds, rounded up, at the plan's rate. A started job is billed at least one second (a
        very short one can even show Docker a FinishedAt a hair before the StartedAt it
        reported). A job that never started is not billed here: it ends owing nothing."""
        started_at = self.started_at or finished_at
        self.billed_seconds = max(1, math.ceil((finished_at - started_at).total_seconds()))
        self.cost = self.plan.cost_of(self.billed_seconds)

    @property
    def container_name(self) -> str:
        return f"oneoff-{self.id}"


class JobUsage(models.Model):
    """A job's memory and CPU over time, one point every few seconds (jobs/usage.py keeps at most
    ``usage.MAX_POINTS``, merging pairs when full): ``points`` is a list of
    ``[unix seconds, memory bytes, CPU seconds so far]``."""

    job = models.OneToOneField(Job, models.CASCADE, primary_key=True, related_name="usage")
    step_seconds = models.FloatField(default=2.0, help_text="Seconds between two points.")
    points = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"usage of {self.job_id}"


class LogStream(models.IntegerChoices):
    STDOUT = 1, "stdout"
    STDERR = 2, "stderr"


class JobLogLine(models.Model):
    # (job, seq) is the key: a surrogate id would be one more index to write per line (a COPY of
    # a million lines took 4.0 s with it, 3.0 s without).
    pk = models.CompositePrimaryKey("job", "seq")
    # No database-level foreign key: its per-row check at commit made bulk log ingest 5x slower
    # (COPY of a million lines: 37 s with it, 7.5 s without). Django still cascades deletes.
    job = models.ForeignKey(
        Job, models.CASCADE, related_name="log_lines", db_index=False, db_constraint=False
    )
    seq = models.PositiveBigIntegerField()
    # Unique and increasing per job (the runner nudges ties by a microsecond), so the time-window
    # paging of Render's logs API returns every line exactly once.
    timestamp = models.DateTimeField()
    stream = models.PositiveSmallIntegerField(choices=LogStream.choices, default=LogStream.STDOUT)
    text = models.TextField()

    # No index on (job, timestamp): it was 40% of ingest's database work (a COPY of a million
    # lines 4.0 s with it, 2.4 s without). A job's times increase with its seqs, so a time
    # window is a range of seqs, found through the sparse ``JobLogMark``.

    def __str__(self) -> str:
        return f"{self.job_id}#{self.seq}"


class JobLogMark(models.Model):
    """A stored line's (seq, timestamp), kept for about one line in ``MARK_EVERY`` of a job's log
    (``jobs.logs.marks``): since a job's times increase strictly with its seqs, the marks around a
    time window give the range of seqs that holds it, read through the lines' primary key. Only
    ever a hint: a line without marks, or a missing mark, only widens the range."""

    pk = models.CompositePrimaryKey("job", "seq")
    job = models.ForeignKey(
        Job, models.CASCADE, related_name="log_marks", db_index=False, db_constraint=False
    )
    seq = models.PositiveBigIntegerField()
    timestamp = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.job_id}#{self.seq}@{self.timestamp.isoformat()}"


class JobLogChunk(models.Model):
    """A run of a job's consecutive log lines, joined by newlines, under a trigram index: what
    makes searching a big log fast without slowing its ingest (``jobs.logs.index``). Written
    after the lines, by a periodic task, for logs of ``LOG_INDEX_MIN_LINES`` lines or more."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(
        Job, models.CASCADE, related_name="log_chunks", db_index=False, db_constraint=False
    )
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    text = models.TextField()

    # No index here: the only one, a GIN on (job, first_seq, text), answers "which chunks of
    # this job, in this stretch of its log, may match" (btree_gin for the first two, pg_trgm for
    # the text; PostgreSQL only, made by migration 0011). A b-tree on the job would tempt the
    # planner into rechecking every chunk's text.

    def __str__(self) -> str:
        return f"{self.job_id}#{self.first_seq}-{self.last_seq}"


class IdempotencyKey(models.Model):
    """The first response to a create request carrying an Idempotency-Key header (kept 24 h)."""

    KEEP = timedelta(hours=24)

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    scope = models.CharField(max_length=200, help_text="The endpoint, e.g. a service's jobs.")
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "scope", "key"], name="idempotency_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_age")]

    def __str__(self) -> str:
        return self.key

    @classmethod
    def purge_expired(cls) -> int:
        """Forget keys older than ``KEEP`` (beat calls this hourly)."""
        deleted, _ = cls.objects.filter(created_at__lt=timezone.now() - cls.KEEP).delete()
        return deleted


class RunnerHost(models.Model):
    """A host running a Celery worker with a Docker Engine. Heart-beats while alive."""

    name = models.CharField(max_length=200, primary_key=True)
    last_seen_at = models.DateTimeField()
    docker_ok = models.BooleanField(default=False)
    docker_error = models.TextField(blank=True)

    class Meta:
        db_table = "services_runnerhost"  # the table of its first home

    def __str__(self) -> str:
        return self.name

    @classmethod
    def seen(cls, name: str, **fields: bool | str) -> None:
        """Record that host ``name`` is alive now, with any other ``fields`` it reports (the
        supervisor adds whether its Docker Engine answers)."""
        cls.objects.update_or_create(name=name, defaults={"last_seen_at": timezone.now(), **fields})

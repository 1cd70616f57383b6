"""Log streams: where a workspace's (or a service's) job logs are forwarded, RFC 5424 over TLS."""

from django.db import models
from django.utils import timezone

from jobs.models import Job
from services.crypto import EncryptedTextField
from services.models import Service, Workspace


class StreamSetting(models.TextChoices):
    SEND = "send", "Send"
    DROP = "drop", "Drop"


class WorkspaceLogStream(models.Model):
    """The workspace's default log stream: RFC 5424 syslog over TCP+TLS to ``HOST:PORT``.

    Also holds the forwarder's counters for the workspace (lines purged by log retention before
    a destination that was down took them, the last error, the last delivery), so they are
    visible in the dashboard and the API even though forwarding runs in the worker processes.
    Jobs created before ``created_at`` are not forwarded (a new stream sends no history).
    """

    workspace = models.OneToOneField(Workspace, models.CASCADE, related_name="log_stream")
    endpoint = models.CharField(max_length=300, blank=True, help_text="HOST:PORT; blank: none.")
    token = EncryptedTextField(blank=True, default="", help_text="Sent with every line.")
    enabled = models.BooleanField(default=True)
    # Render's "include logs from preview instances"; Oneoff has no preview instances yet.
    preview = models.CharField(
        max_length=8, choices=StreamSetting.choices, default=StreamSetting.SEND
    )
    dropped_lines = models.PositiveBigIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "services_workspacelogstream"  # the table of its first home

    def __str__(self) -> str:
        return f"log stream of {self.workspace_id} to {self.endpoint or '-'}"

    @property
    def is_configured(self) -> bool:
        return bool(self.endpoint)


class ServiceLogStream(models.Model):
    """A service's override of the workspace log stream (no row: send to the default).

    ``send`` with a blank endpoint sends to the workspace default, ``send`` with an endpoint
    sends to that custom destination (with its own token), ``drop`` sends nothing.
    """

    service = models.OneToOneField(Service, models.CASCADE, related_name="log_stream")
    setting = models.CharField(
        max_length=8, choices=StreamSetting.choices, default=StreamSetting.SEND
    )
    endpoint = models.CharField(max_length=300, blank=True)
    token = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "services_servicelogstream"  # the table of its first home

    def __str__(self) -> str:
        return f"log stream of {self.service_id}: {self.setting} {self.endpoint}".rstrip()


class LogCursor(models.Model):
    """How far a job's stored log lines have been forwarded: ``next_seq`` is the first line not
    yet sent. Moved only after a send succeeded (so a line is sent at least once, twice only
    when a worker dies between the send and this write). A row per job rather than one
    position per destination: the log table's key is (job, seq), with no id increasing across
    jobs (a surrogate one would slow ingest, see ``JobLogLine``). ``done``: the job has ended
    and all its lines were sent (or skipped, or counted as purged); never looked at again.
    """

    job = models.OneToOneField(
        Job, models.CASCADE, primary_key=True, related_name="+", db_constraint=False
    )
    next_seq = models.PositiveBigIntegerField(default=0)
    done = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.job_id} forwarded to #{self.next_seq}"


class LogDestination(models.Model):
    """One ``HOST:PORT`` lines are forwarded to, and its lease: exactly one worker process (the
    holder, until ``lease_until``) forwards to it at a time; others take over once it lapses."""

    endpoint = models.CharField(max_length=300, unique=True)
    holder = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.endpoint} (held by {self.holder or '-'})"

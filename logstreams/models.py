"""Log streams: where a workspace's (or a service's) job logs are forwarded, RFC 5424 over TLS."""

from django.db import models

from services.crypto import EncryptedTextField
from services.models import Service, Workspace


class StreamSetting(models.TextChoices):
    SEND = "send", "Send"
    DROP = "drop", "Drop"


class WorkspaceLogStream(models.Model):
    """The workspace's default log stream: RFC 5424 syslog over TCP+TLS to ``HOST:PORT``.

    Also holds the forwarder's counters for the workspace (lines dropped because a destination
    was down longer than the buffer holds, the last error, the last delivery), so they are
    visible in the dashboard and the API even though forwarding runs in the runner processes.
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
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "services_servicelogstream"  # the table of its first home

    def __str__(self) -> str:
        return f"log stream of {self.service_id}: {self.setting} {self.endpoint}".rstrip()

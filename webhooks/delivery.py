"""Sending a delivery: its body, its Standard Webhooks signature, the POST, the retry schedule.

An attempt claims its delivery with a compare-and-set on ``locked_until`` (two workers never
send one delivery at once; a worker that dies mid-attempt lets the lock lapse and the sweep sends
it again), POSTs the event's body, records the attempt (status code, an excerpt of the response
body, or the error) and either ends the delivery (a 2xx: ``delivered``; the schedule used up:
``failed``) or sets its next attempt.

The headers are the Standard Webhooks ones: ``webhook-id`` (the event's id: the same on every
attempt and re-send, so a receiver can drop what it already has), ``webhook-timestamp`` (this
attempt's) and ``webhook-signature`` (``v1,`` + HMAC-SHA256 of ``id.timestamp.body`` with the
webhook's secret, by the ``standardwebhooks`` library).

A receiver cannot hold a worker: one attempt has ``WEBHOOK_TIMEOUT`` seconds for everything
(connect, TLS, send, the answer), after which a watchdog closes the socket; at most
``WEBHOOK_RESPONSE_READ_BYTES`` of the answer are read and ``WEBHOOK_RESPONSE_MAX_CHARS`` kept;
redirects are not followed (a 3xx is a failed attempt, so no redirect reaches an address the
egress rules refuse); the URL's host is checked by the egress rules on every attempt and the
connection made to the address they checked.
"""

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as Signer

from jobs.models import Job, LogStream
from services.egress import CaFileError, EgressRefused, allowed_addresses, tls_context
from services.errors import Invalid
from services.models import EnvVar
from webhooks.models import Attempt, Delivery, DeliveryState, Event, Webhook

log = logging.getLogger(__name__)

LOCK = timedelta(seconds=120)  # an attempt's claim; far above WEBHOOK_TIMEOUT
LOG_LINES = 50  # a job_run_ended payload carries the job's last lines
LOG_LINE_CHARS = 2000  # each cut to this many characters
USER_AGENT = "Oneoff-Webhooks/1"

# The API's job shape (``api.schemas.jobs.job_dict``): the api app plugs it in when it loads
# (the webhooks app sits below the faces and does not import them).
job_shape: Callable[[Job], dict] | None = None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# The body.


def _job_extras(job_id: str) -> dict:
    """What a ``job_run_ended`` receiver would otherwise fetch: the job, how it ended, its cost
    and its last lines. The job and its reason have the values of its env snapshot masked
    (``EnvVar.scrub``); the lines are as stored, masked at ingest unless the service turned
    masking off (``jobs.logs.mask``)."""
    job = (
        Job.objects.select_related(
            "build", "env_snapshot", "workspace", "created_by", "canceled_by", "plan"
        )
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        return {}
    values = list(job.env_snapshot.values.values())
    lines = list(
        job.log_lines.order_by("-seq").values_list("timestamp", "stream", "text")[:LOG_LINES]
    )
    lines.reverse()
    shape = job_shape(job) if job_shape is not None else {"id": job.id, "status": job.status}
    return {
        "job": json.loads(EnvVar.scrub(json.dumps(shape), values)),
        "exitCode": job.exit_code,
        "reason": json.loads(EnvVar.scrub(json.dumps(job.reason or {}), values)),
        "durationSeconds": job.duration_seconds,
        "billedSeconds": job.billed_seconds,
        "cost": str(job.cost) if job.cost is not None else None,
        "logLineCount": job.log_line_count,
        "logs": [
            {
                "timestamp": _iso(timestamp),
                "stream": "stderr" if stream == LogStream.STDERR else "stdout",
                "text": text[:LOG_LINE_CHARS],
            }
            for timestamp, stream, text in lines
        ],
    }


def make_body(event: Event) -> str:
    """Render's webhook payload, ``{type, timestamp, data: {id, serviceId, …}}``, with the
    event's details (and, for ``job_run_ended``, the job's) in ``data``."""
    data: dict = {
        "id": event.id,
        "serviceId": event.service_id,
        "serviceName": event.service_name,
        "ownerId": event.workspace_id,
        **event.details,
    }
    if event.type == "job_run_ended":
        data.update(_job_extras(event.subject_id))
    payload = {"type": event.type, "timestamp": _iso(event.created_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def body_of(event: Event) -> str:
    """The event's body, made once: every attempt of every delivery sends the same bytes."""
    if not event.body:
        Event.objects.filter(pk=event.pk, body="").update(body=make_body(event))
        event.refresh_from_db(fields=["body"])
    return event.body


# Signing.


def sign(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    when = when.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Signer(secret).sign(msg_id, when, body),
    }


# The POST.


@dataclass
class Outcome:
    status_code: int | None = None
    response_body: str = ""
    error: str = ""
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_url(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an ``https://`` URL; ``Invalid`` naming ``url`` otherwise."""
    url = (url or "").strip()
    if len(url) > 2000:
        raise Invalid("url", "must be at most 2000 characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise Invalid("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid("url", f"is not a valid URL ({exc})") from exc
    if parts.scheme != "https":
        raise Invalid("url", "must be an https:// URL")
    if not parts.hostname:
        raise Invalid("url", "must name a host")
    if parts.username or parts.password:
        raise Invalid("url", "must not contain a user name or password")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port or 443, path


def check_url(url: str) -> str:
    """A webhook URL as stored: https, and a host the egress rules allow (checked again on
    every attempt: what a name resolves to may change)."""
    host, port, _ = parse_url(url)
    try:
        allowed_addresses(f"[{host}]" if ":" in host else host, port)
    except EgressRefused as exc:
        raise Invalid("url", exc.message) from exc
    return url.strip()


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection over a socket already opened to a checked address."""

    def __init__(self, host: str, sock: ssl.SSLSocket, timeout: float, context: ssl.SSLContext):
        # The context given, or http.client makes one, loading the system store each time.
        super().__init__(host, timeout=timeout, context=context)
        self.sock = sock

    def connect(self) -> None:  # the socket is given; never resolve the name again
        return


def _excerpt(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").replace("\x00", "")
    return text[: settings.WEBHOOK_RESPONSE_MAX_CHARS]


def post(url: str, headers: dict[str, str], body: str) -> Outcome:
    """POST ``body`` to ``url`` within WEBHOOK_TIMEOUT seconds in all; never raises."""
    started = time.monotonic()
    timeout = float(settings.WEBHOOK_TIMEOUT)
    outcome = Outcome()
    try:
        host, port, path = parse_url(url)
    except Invalid as exc:
        outcome.error = str(exc)
        return outcome
    name = f"[{host}]" if ":" in host else host
    current: list[socket.socket] = []  # the socket the watchdog closes when time is up
    timed_out = threading.Event()

    def watchdog() -> None:
        timed_out.set()
        for open_socket in current:
            with contextlib.suppress(OSError):
                open_socket.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    timer.start()
    try:
        context = tls_context(settings.WEBHOOK_CA_FILE or "", "WEBHOOK_CA_FILE")
        failure: OSError | None = None
        sock: ssl.SSLSocket | None = None
        for address in allowed_addresses(name, port):
            left = timeout - (time.monotonic() - started)
            if left <= 0 or timed_out.is_set():
                raise TimeoutError("no time left")
            try:
                raw = socket.create_connection((address, port), timeout=left)
            except OSError as exc:
                failure = exc
                continue
            current.append(raw)
            if timed_out.is_set():
                raise TimeoutError("no time left")
            try:
                sock = context.wrap_socket(raw, server_hostname=host)
            except BaseException:
                raw.close()
                raise
            current.append(sock)
            break
        if sock is None:
            assert failure is not None
            raise failure
        connection = _Connection(host, sock, timeout, context)
        try:
            connection.request(
                "POST",
                path,
                body=body.encode(),
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "Host": host if port == 443 else f"{name}:{port}",
                },
            )
            response = connection.getresponse()
            outcome.status_code = response.status
            outcome.response_body = _excerpt(response.read(settings.WEBHOOK_RESPONSE_READ_BYTES))
            if 300 <= response.status < 400:
                outcome.error = "redirects are not followed"
        finally:
            connection.close()
    except CaFileError as exc:
        outcome.error = str(exc)
    except EgressRefused as exc:
        outcome.error = exc.message
    except (OSError, http.client.HTTPException, ValueError) as exc:
        answering = bool(current) and isinstance(current[-1], ssl.SSLSocket)
        if timed_out.is_set() or (answering and isinstance(exc, TimeoutError)):
            outcome.error = f"no answer within {settings.WEBHOOK_TIMEOUT:g} s"
        elif outcome.status_code is not None:
            outcome.error = "the answer was cut short"
        else:
            # Like the log streams: one wording for every failure to connect, a certificate
            # refused included (no port scanner); the reason goes to the server log.
            log.warning("webhook to %s:%s failed: %r", host, port, exc)
            outcome.error = EgressRefused(name).message
    finally:
        timer.cancel()
        for open_socket in current:
            open_socket.close()
        if timed_out.is_set() and not outcome.error and not outcome.ok:
            outcome.error = f"no answer within {settings.WEBHOOK_TIMEOUT:g} s"
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    outcome.error = outcome.error[:500]
    return outcome


# One attempt.


def schedule() -> list[float]:
    """Seconds before each retry (WEBHOOK_RETRY_SCHEDULE); its sum is the retry window."""
    return [float(s) for s in settings.WEBHOOK_RETRY_SCHEDULE]


def claim(delivery_id: int) -> bool:
    now = timezone.now()
    return bool(
        Delivery.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=now),
            pk=delivery_id,
            state=DeliveryState.PENDING,
            next_attempt_at__lte=now,
        ).update(locked_until=now + LOCK)
    )


def attempt(delivery_id: int) -> float | None:
    """Make one attempt of a due delivery (nothing when it is not due, or another worker has
    it). Returns the seconds until its next attempt when one is scheduled, else None."""
    if not claim(delivery_id):
        return None
    delivery = Delivery.objects.select_related("webhook", "event").get(pk=delivery_id)
    webhook, event = delivery.webhook, delivery.event
    now = timezone.now()
    if not webhook.enabled:
        Delivery.objects.filter(pk=delivery.pk).update(
            state=DeliveryState.FAILED,
            locked_until=None,
            next_attempt_at=None,
            last_error="not sent: the webhook is disabled",
        )
        return None
    body = body_of(event)
    outcome = post(webhook.url, sign(webhook.secret, event.id, now, body), body)
    number = delivery.attempts + 1
    delays = schedule()
    round_attempts = delivery.round_attempts + 1
    fields: dict = {
        "attempts": F("attempts") + 1,
        "round_attempts": round_attempts,
        "locked_until": None,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    delay: float | None = None
    if outcome.ok:
        fields.update(state=DeliveryState.DELIVERED, next_attempt_at=None)
    elif round_attempts > len(delays):
        fields.update(state=DeliveryState.FAILED, next_attempt_at=None)
    else:
        delay = delays[round_attempts - 1]
        fields["next_attempt_at"] = timezone.now() + timedelta(seconds=delay)
    try:
        _record(delivery, number, now, outcome, fields)
    except IntegrityError:  # the webhook was deleted meanwhile, its deliveries with it
        return None
    if outcome.ok:
        log.info("webhook %s: %s delivered (%s)", webhook.id, event.id, outcome.status_code)
    else:
        log.info(
            "webhook %s: %s attempt %s failed (%s)",
            webhook.id,
            event.id,
            number,
            outcome.status_code or outcome.error,
        )
    return delay


def _record(delivery: Delivery, number: int, now: datetime, outcome: Outcome, fields: dict) -> None:
    with transaction.atomic():  # the attempt and where its delivery stands, seen together
        if not Delivery.objects.select_for_update().filter(pk=delivery.pk).exists():
            raise IntegrityError("the delivery is gone")  # its webhook was deleted meanwhile
        Attempt.objects.create(
            delivery=delivery,
            webhook_id=delivery.webhook_id,
            number=number,
            sent_at=now,
            created_at=now,
            status_code=outcome.status_code,
            response_body=outcome.response_body,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        Delivery.objects.filter(pk=delivery.pk).update(**fields)


def purge(batch: int = 1000) -> int:
    """Forget events older than WEBHOOK_EVENT_RETENTION_DAYS (their deliveries and attempts
    with them), a batch at a time: what a receiver answered does not pile up for ever."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS)
    old = list(Event.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch])
    if not old:
        return 0
    with transaction.atomic():  # an attempt in flight lands before, or finds its delivery gone
        list(Delivery.objects.select_for_update().filter(event__in=old).values_list("pk"))
        Event.objects.filter(pk__in=old).delete()
    return len(old)


# One webhook, one sender at a time.

DRAIN_SECONDS = 30.0  # a sender goes on with its webhook's due deliveries this long at most


def _lease_for() -> timedelta:
    return timedelta(seconds=float(settings.WEBHOOK_TIMEOUT) + 60)


def lease(webhook_id: str) -> bool:
    """Take (or renew) the webhook's sending lease: compare-and-set on ``sending_until``."""
    now = timezone.now()
    return bool(
        Webhook.objects.filter(
            Q(sending_until__isnull=True) | Q(sending_until__lt=now), pk=webhook_id
        ).update(sending_until=now + _lease_for())
    )


def deliver(delivery_id: int) -> list[tuple[int, float]]:
    """Send a delivery, and then its webhook's other due deliveries, oldest first, holding the
    webhook's lease, for up to DRAIN_SECONDS. A webhook whose lease another worker holds is left
    alone: its holder goes on with what is due (or the sweep sends it). So a slow or hostile
    receiver keeps one thread of the installation busy, never every thread, and a burst of
    events to one receiver goes out one after another. Returns (delivery, seconds) of the
    retries scheduled."""
    found = Delivery.objects.filter(pk=delivery_id).values_list("webhook_id", flat=True)
    webhook_id = found.first()
    if webhook_id is None or not lease(webhook_id):
        return []
    scheduled: list[tuple[int, float]] = []
    tried: set[int] = set()
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
        next_id: int | None = delivery_id
        while next_id is not None:
            tried.add(next_id)
            delay = attempt(next_id)
            if delay is not None:
                scheduled.append((next_id, delay))
            if time.monotonic() > deadline:
                break
            Webhook.objects.filter(pk=webhook_id).update(
                sending_until=timezone.now() + _lease_for()
            )
            now = timezone.now()
            next_id = (
                Delivery.objects.filter(
                    Q(locked_until__isnull=True) | Q(locked_until__lt=now),
                    webhook_id=webhook_id,
                    state=DeliveryState.PENDING,
                    next_attempt_at__lte=now,
                )
                .exclude(pk__in=tried)
                .order_by("next_attempt_at", "pk")
                .values_list("pk", flat=True)
                .first()
            )
    finally:
        Webhook.objects.filter(pk=webhook_id).update(sending_until=None)
    return scheduled


def resend(delivery: Delivery) -> None:
    """Send a delivery again now, with a fresh retry schedule (same event, same body, same
    ``webhook-id``). An attempt in flight keeps its claim (``locked_until``): the two are never
    sent at once, and what it records wins."""
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.PENDING, round_attempts=0, next_attempt_at=timezone.now()
    )


def due(batch: int = 200, *, grace: float = 5.0) -> list[int]:
    """Deliveries due for more than ``grace`` seconds and held by nobody: the sweep's work (a
    message lost, a worker dead mid-attempt, a retry further off than a countdown)."""
    now = timezone.now()
    return list(
        Delivery.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=now),
            state=DeliveryState.PENDING,
            next_attempt_at__lte=now - timedelta(seconds=grace),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:batch]
    )

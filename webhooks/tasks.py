"""Thin tasks over ``webhooks.delivery``: one attempt, and the sweep beat runs.

Deliveries run on the ``jobs`` queue (no worker of its own to run), but never take more than
WEBHOOK_CONCURRENCY of a worker's threads at once: an attempt that finds them all busy for 2 s
leaves its delivery due, and the sweep sends it again, so a slow receiver never holds up job
starts; and one worker at a time sends to a webhook (``delivery.deliver``'s lease), so a slow
receiver never holds up the others' deliveries either. While the database does not answer,
both log one line per outage (the sweep sends what is due once it answers again).
"""

import logging
import threading

from celery import shared_task
from django.conf import settings

from services.outage import quiet_while_database_down
from webhooks import delivery

log = logging.getLogger(__name__)

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()
COUNTDOWN_MAX = 120.0  # a retry this close is sent with a countdown; further ones by the sweep


def slots() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max(1, settings.WEBHOOK_CONCURRENCY))
        return _slots


def enqueue(delivery_id: int, countdown: float | None = None) -> None:
    """Send an attempt's message; never raises (the sweep sends what is due anyway)."""
    try:
        if countdown is None:
            deliver.apply_async(args=(delivery_id,))
        else:
            deliver.apply_async(args=(delivery_id,), countdown=countdown)
    except Exception as exc:  # a broker that does not answer
        log.warning(
            "webhook delivery %s: not queued (%s); the sweep will send it", delivery_id, exc
        )


@shared_task(ignore_result=True)
@quiet_while_database_down
def deliver(delivery_id: int) -> None:
    if not slots().acquire(timeout=2.0):
        return  # still due: the sweep sends it again
    try:
        scheduled = delivery.deliver(delivery_id)
    finally:
        slots().release()
    for pk, delay in scheduled:
        if delay <= COUNTDOWN_MAX:
            enqueue(pk, countdown=delay)


@shared_task(ignore_result=True)
@quiet_while_database_down
def sweep() -> int:
    due = delivery.due()
    for delivery_id in due:
        enqueue(delivery_id)
    delivery.purge()
    return len(due)

from typing import Any

from django.apps import AppConfig


class LogstreamsConfig(AppConfig):
    name = "logstreams"

    def ready(self) -> None:
        import atexit

        from celery import signals as celery_signals
        from django.db.models.signals import post_delete, post_save

        from jobs.logs.parse import StoredLine
        from jobs.logs.store import LogWriter, lines_stored
        from logstreams import forward
        from logstreams.models import ServiceLogStream, WorkspaceLogStream
        from services.models import Service

        def lines_were_stored(
            sender: type[LogWriter], job_id: str, lines: list[StoredLine], **kwargs: object
        ) -> None:
            forward.lines_stored_here(job_id)

        def worker_ready(sender: Any = None, **kwargs: object) -> None:
            # Every worker that serves the jobs queue forwards (a destination's lease lets one
            # send at a time); a builds-only worker stores no job lines and does not.
            try:
                queues = set(sender.app.amqp.queues.consume_from or ())
            except AttributeError:
                queues = set()
            if queues != {"builds"}:
                forward.start()

        # Stored lines wake the forwarder at once (it also looks by itself every second).
        # Idempotent: ready() may run twice in tests that reload the app registry.
        lines_stored.connect(lines_were_stored, weak=False, dispatch_uid="logstreams.forward")
        celery_signals.worker_ready.connect(
            worker_ready, weak=False, dispatch_uid="logstreams.start"
        )
        atexit.unregister(forward.flush_at_exit)
        atexit.register(forward.flush_at_exit)
        # A settings change applies at once in this process (others re-read within seconds).
        for model in (WorkspaceLogStream, ServiceLogStream, Service):
            post_save.connect(forward.invalidate_routes, sender=model, dispatch_uid="ls")
            post_delete.connect(forward.invalidate_routes, sender=model, dispatch_uid="ls")

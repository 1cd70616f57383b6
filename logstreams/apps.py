from django.apps import AppConfig


class LogstreamsConfig(AppConfig):
    name = "logstreams"

    def ready(self):
        import atexit

        from django.db.models.signals import post_delete, post_save

        from jobs.logs.store import lines_stored
        from logstreams import forward
        from logstreams.models import ServiceLogStream, WorkspaceLogStream
        from services.models import Service

        def forward_lines(sender, job_id, lines, **kwargs):
            forward.forward_batch(job_id, lines)

        # Every stored batch of job log lines goes to the workspace's log stream.
        # Idempotent: ready() may run twice in tests that reload the app registry.
        lines_stored.connect(forward_lines, weak=False, dispatch_uid="logstreams.forward")
        atexit.unregister(forward.flush_at_exit)
        atexit.register(forward.flush_at_exit)
        # A settings change applies at once in this process (others re-read within seconds).
        for model in (WorkspaceLogStream, ServiceLogStream, Service):
            post_save.connect(forward.invalidate_routes, sender=model, dispatch_uid="ls")
            post_delete.connect(forward.invalidate_routes, sender=model, dispatch_uid="ls")

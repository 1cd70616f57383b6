from django.apps import AppConfig


class LogstreamsConfig(AppConfig):
    name = "logstreams"

    def ready(self):
        import atexit

        from django.db.models.signals import post_delete, post_save

        from jobs import logs
        from logstreams import forward
        from logstreams.models import ServiceLogStream, WorkspaceLogStream
        from services.models import Service

        # Every stored batch of job log lines goes to the workspace's log stream.
        if forward.forward_batch not in logs.BATCH_LISTENERS:
            logs.BATCH_LISTENERS.append(forward.forward_batch)
            atexit.register(forward.flush_at_exit)
        # A settings change applies at once in this process (others re-read within seconds).
        for model in (WorkspaceLogStream, ServiceLogStream, Service):
            post_save.connect(forward.invalidate_routes, sender=model, dispatch_uid="ls")
            post_delete.connect(forward.invalidate_routes, sender=model, dispatch_uid="ls")

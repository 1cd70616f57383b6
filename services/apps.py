from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "services"

    def ready(self):
        import atexit

        from django.db.models.signals import post_delete, post_save

        from jobs import logs
        from services import logstreams
        from services.models import Service, ServiceLogStream, WorkspaceLogStream

        # Every stored batch of job log lines goes to the workspace's log stream.
        if logstreams.forward_batch not in logs.BATCH_LISTENERS:
            logs.BATCH_LISTENERS.append(logstreams.forward_batch)
            atexit.register(logstreams.flush_at_exit)
        # A settings change applies at once in this process (others re-read within seconds).
        for model in (WorkspaceLogStream, ServiceLogStream, Service):
            post_save.connect(logstreams.invalidate_routes, sender=model, dispatch_uid="ls")
            post_delete.connect(logstreams.invalidate_routes, sender=model, dispatch_uid="ls")

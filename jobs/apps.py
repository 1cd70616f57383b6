from django.apps import AppConfig
from django.db.backends.signals import connection_created


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs.events import state_changed as record_event
        from jobs.logs.search import use_re2_for_sqlite_regexp
        from services.transitions import state_changed

        # Idempotent: ready() may run twice in tests that reload the app registry.
        state_changed.connect(record_event, weak=False, dispatch_uid="jobs.events")
        connection_created.connect(use_re2_for_sqlite_regexp, dispatch_uid="jobs.re2_regexp")

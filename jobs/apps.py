from django.apps import AppConfig
from django.db.backends.signals import connection_created


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs.logs.search import use_re2_for_sqlite_regexp

        connection_created.connect(use_re2_for_sqlite_regexp, dispatch_uid="jobs.re2_regexp")

from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "services"

    def ready(self) -> None:
        from services.events import state_changed as record_event
        from services.transitions import state_changed

        # Idempotent: ready() may run twice in tests that reload the app registry.
        state_changed.connect(record_event, weak=False, dispatch_uid="services.events")

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from services.transitions import state_changed
        from webhooks.events import state_changed as record_event

        # Idempotent: ready() may run twice in tests that reload the app registry.
        state_changed.connect(record_event, weak=False, dispatch_uid="webhooks.events")

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"

    def ready(self) -> None:
        from api.schemas.jobs import job_dict
        from webhooks import delivery

        # A job_run_ended webhook carries the job in the API's shape.
        delivery.job_shape = job_dict

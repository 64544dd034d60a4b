from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Patients, care teams and access"

    def ready(self) -> None:
        from api import schema  # noqa: F401 - registers the OpenAPI extensions

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Patients, care teams and access"

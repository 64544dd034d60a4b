from django.apps import AppConfig


class CareConfig(AppConfig):
    name = "care"
    verbose_name = "Patients, care teams, consent and access"

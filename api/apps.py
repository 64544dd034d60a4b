from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Patients, care teams and access"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.core import checks
        from django.db.models.signals import pre_save

        from api import schema  # noqa: F401 - registers the OpenAPI extensions
        from api.checks import secret_key_set

        checks.register(secret_key_set, checks.Tags.security, deploy=True)
        from api.auth import revoke_on_password_change

        pre_save.connect(revoke_on_password_change, sender=get_user_model(),
                         dispatch_uid="api.revoke_tokens_on_password_change")

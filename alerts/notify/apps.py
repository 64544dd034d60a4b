from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "alerts.notify"
    label = "notify"
    verbose_name = "Notifications: on-call routing, email and signed webhooks"

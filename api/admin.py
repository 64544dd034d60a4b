"""Django admin for every model of the project, audited.

* Every add, change and delete made in the admin writes an ``AuditEvent``
  (``admin_added``, ``admin_changed``, ``admin_deleted``) with the model and object id,
  beside Django's own admin log; the patient is set when the object belongs to one.
* The audit trail, the delivery log and invitations are read-only here; history tables
  show on their model's page.
* The admin's own sign-in page is not used: it sends to the dashboard's sign-in page,
  which has the lock-out (``api.throttling.LoginGuard``). A staff user signs in there and
  then opens ``/admin/``.
* A device's token hash and an invitation's code hash are never shown.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from simple_history.admin import SimpleHistoryAdmin

from care.access import audit

APP_LABELS = ("care", "alerts", "notify", "ingest", "forecasting", "coaching")
# Invitations are made through the API (the code is shown once there); import jobs by uploads.
READ_ONLY = {("care", "auditevent"), ("notify", "delivery"), ("care", "invitation"), ("ingest", "importjob")}
HIDDEN_FIELDS = {("care", "device"): ("token_hash",), ("care", "invitation"): ("code_hash",)}


def _patient_id(obj) -> int | None:
    if obj._meta.label_lower == "care.patient":
        return obj.pk
    return getattr(obj, "patient_id", None)


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose every write is also an audit event (ids and names only)."""

    def _audit(self, request, obj, action: str) -> None:
        audit(request, _patient_id(obj), action, model=obj._meta.label_lower, object=str(obj.pk))

    def log_addition(self, request, obj, message):
        self._audit(request, obj, "admin_added")
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit(request, obj, "admin_changed")
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit(request, obj, "admin_deleted")
        return super().log_deletions(request, queryset)


class ReadOnlyAdmin(AuditedAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _login(request, extra_context=None):
    """The admin's sign-in goes through the dashboard's (lock-out, audit of failures)."""
    return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)


admin.site.login = _login  # type: ignore[method-assign]
admin.site.site_header = "healthstream administration"


def register_all() -> None:
    """Register every model of the project's apps (history tables excepted: each model
    with history shows it on its own page)."""
    for label in APP_LABELS:
        for model in apps.get_app_config(label).get_models():
            key = (model._meta.app_label, model._meta.model_name)
            if model._meta.model_name.startswith("historical") or admin.site.is_registered(model):
                continue
            bases: tuple = (ReadOnlyAdmin if key in READ_ONLY else AuditedAdmin,)
            if hasattr(model._meta, "simple_history_manager_attribute"):  # its history on its page
                bases = (SimpleHistoryAdmin, *bases)
            attrs: dict = {"list_display": ("__str__",)}
            if key in HIDDEN_FIELDS:
                attrs["exclude"] = HIDDEN_FIELDS[key]
            admin.site.register(model, type(f"{model.__name__}Admin", bases, attrs))


register_all()

# Users and groups keep Django's own pages (password change, permissions), audited too.
for _model, _admin in ((get_user_model(), UserAdmin), (Group, GroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, type(f"Audited{_admin.__name__}", (AuditedAdmin, _admin), {}))

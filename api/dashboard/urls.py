from django.contrib.auth import views as auth_views
from django.urls import path

from api.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/dashboard/login/"), name="logout"),
    path("", views.queue, name="queue"),
    path("queue/rows", views.queue_rows, name="queue-rows"),
    path("alerts/acknowledge", views.bulk_acknowledge, name="bulk-acknowledge"),
    path("quality/", views.alert_quality, name="quality"),
    path("alerts/<int:alert_id>/<str:action>", views.alert_action, name="alert-action"),
    path("patients/", views.patients, name="patients"),
    path("patients/<int:patient_id>/", views.patient, name="patient"),
    path("patients/<int:patient_id>/thresholds", views.threshold, name="threshold"),
]

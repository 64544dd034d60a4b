"""Routes of the whole API (under /api/v1/): devices, patients, clinicians."""

from django.urls import path, re_path

from api import care, enrolment, fhir, forecasts, imports, samples, views

urlpatterns = [
    # the device push endpoint and the samples store
    path("ingest/batches", samples.IngestBatchView.as_view(), name="ingest-batches"),
    path("patients/<int:patient_id>/samples", samples.PatientSamplesView.as_view(), name="patient-samples"),
    re_path(r"^schemas/(?P<name>[a-z0-9.]{1,40})\.json$", samples.SampleSchemaView.as_view(), name="schemas"),
    # sign-in and who am I
    path("auth/token", views.TokenView.as_view(), name="auth-token"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all", views.LogoutAllView.as_view(), name="auth-logout-all"),
    path("me", views.MeView.as_view(), name="me"),
    path("teams", views.TeamListView.as_view(), name="teams"),
    path("teams/<int:team_id>/audit.csv", views.TeamAuditExportView.as_view(), name="team-audit"),
    # enrolment and the team's members (what a clinic's portal calls)
    path("teams/<int:team_id>/invitations", enrolment.TeamInvitationsView.as_view(), name="team-invitations"),
    path("teams/<int:team_id>/invitations/<int:invitation_id>/revoke", enrolment.TeamInvitationRevokeView.as_view(),
         name="team-invitation-revoke"),
    path("invitations/accept", enrolment.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("teams/<int:team_id>/members", enrolment.TeamMembersView.as_view(), name="team-members"),
    path("teams/<int:team_id>/members/<int:clinician_id>", enrolment.TeamMemberView.as_view(), name="team-member"),
    # patients (a patient reads only themself; a clinician the consenting patients of their teams)
    path("patients", views.PatientListView.as_view(), name="patients"),
    path("patients/<int:patient_id>", views.PatientDetailView.as_view(), name="patient"),
    path("patients/<int:patient_id>/devices", views.DeviceListView.as_view(), name="patient-devices"),
    path("patients/<int:patient_id>/devices/<int:device_id>/revoke", views.DeviceRevokeView.as_view(),
         name="patient-device-revoke"),
    path("patients/<int:patient_id>/imports", imports.ImportListView.as_view(), name="patient-imports"),
    path("patients/<int:patient_id>/imports/<int:job_id>", imports.ImportDetailView.as_view(), name="patient-import"),
    path("patients/<int:patient_id>/consents", views.ConsentListView.as_view(), name="patient-consents"),
    path("patients/<int:patient_id>/consents/<int:consent_id>/revoke", views.ConsentRevokeView.as_view(),
         name="patient-consent-revoke"),
    path("patients/<int:patient_id>/daily", views.DailySummaryView.as_view(), name="patient-daily"),
    path("patients/<int:patient_id>/chart", views.ChartView.as_view(), name="patient-chart"),
    path("patients/<int:patient_id>/recommendations", views.RecommendationListView.as_view(),
         name="patient-recommendations"),
    path("patients/<int:patient_id>/recommendations/<int:recommendation_id>/feedback",
         views.FeedbackView.as_view(), name="patient-recommendation-feedback"),
    path("patients/<int:patient_id>/context", views.ContextListView.as_view(), name="patient-context"),
    path("patients/<int:patient_id>/access-log", views.AccessLogView.as_view(), name="patient-access-log"),
    path("patients/<int:patient_id>/alerts", views.PatientAlertListView.as_view(), name="patient-alerts"),
    path("patients/<int:patient_id>/alerts/<int:alert_id>", views.PatientAlertDetailView.as_view(),
         name="patient-alert"),
    path("patients/<int:patient_id>/timeline", care.TimelineView.as_view(), name="patient-timeline"),
    path("patients/<int:patient_id>/thresholds", care.ThresholdListView.as_view(), name="patient-thresholds"),
    re_path(r"^patients/(?P<patient_id>[0-9]+)/thresholds/(?P<detector>[a-z0-9_.-]{1,48})$",
            care.ThresholdDetailView.as_view(), name="patient-threshold"),
    path("patients/<int:patient_id>/forecasts", forecasts.PatientForecastsView.as_view(),
         name="patient-forecasts"),
    path("patients/<int:patient_id>/fhir/Observation", fhir.ObservationBundleView.as_view(),
         name="patient-fhir-observations"),
    # the care team's alert queue
    path("alerts", care.AlertQueueView.as_view(), name="alerts"),
    path("alerts/quality", care.AlertQualityView.as_view(), name="alert-quality"),
    path("alerts/<int:alert_id>", care.AlertDetailView.as_view(), name="alert"),
    path("alerts/<int:alert_id>/acknowledge", care.AcknowledgeView.as_view(), name="alert-acknowledge"),
    path("alerts/<int:alert_id>/snooze", care.SnoozeView.as_view(), name="alert-snooze"),
    path("alerts/<int:alert_id>/unsnooze", care.UnsnoozeView.as_view(), name="alert-unsnooze"),
    path("alerts/<int:alert_id>/escalate", care.EscalateView.as_view(), name="alert-escalate"),
    path("alerts/<int:alert_id>/resolve", care.ResolveView.as_view(), name="alert-resolve"),
    path("alerts/<int:alert_id>/notes", care.NoteView.as_view(), name="alert-notes"),
    path("alerts/<int:alert_id>/escalation-targets", care.EscalationTargetsView.as_view(),
         name="alert-escalation-targets"),
]

from django.urls import path

from ingest import views

urlpatterns = [
    path("ingest/batches", views.IngestBatchView.as_view(), name="ingest-batches"),
    path("patients/<int:patient_id>/samples", views.PatientSamplesView.as_view(), name="patient-samples"),
]

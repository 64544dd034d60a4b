"""The FHIR R4 base, mounted at /fhir/R4/ (config/urls.py)."""

from django.urls import path

from api import fhir

urlpatterns = [
    path("metadata", fhir.CapabilityStatementView.as_view(), name="fhir-metadata"),
    path("Observation", fhir.ObservationSearchView.as_view(), name="fhir-observation-search"),
]

"""Routes of the patient and clinician API (under /api/v1/)."""

from django.urls import path

urlpatterns: list = []

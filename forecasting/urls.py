from django.urls import path

from forecasting import views

urlpatterns = [
    path("patients/<int:patient_id>/forecasts", views.PatientForecastsView.as_view(),
         name="patient-forecasts"),
]

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api.health import healthz, metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves its start-up script as a file: no inline JavaScript (CSP)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"), name="docs"),
    path("api/v1/", include("api.urls")),
    path("fhir/R4/", include("api.fhir_urls")),
    path("dashboard/", include("api.dashboard.urls")),
    path("admin/", admin.site.urls),
]

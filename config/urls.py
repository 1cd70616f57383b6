from django.contrib import admin
from django.urls import include, path

from api.api import api
from api.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("v1/", api.urls),
    path("", include("dashboard.urls")),
]

handler400 = "dashboard.errors.bad_request"
handler403 = "dashboard.errors.permission_denied"
handler404 = "dashboard.errors.page_not_found"
handler500 = "config.unavailable.server_error"  # a 503 when the database is down

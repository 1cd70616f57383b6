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

from django.contrib import admin
from django.urls import include, path

from config.api import api
from config.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("v1/", api.urls),
    path("", include("services.urls")),
    path("", include("jobs.urls")),
    path("", include("services.logstream_urls")),
]

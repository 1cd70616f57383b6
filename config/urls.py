from django.contrib import admin
from django.urls import path
from django.views.generic import TemplateView

from config.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
]

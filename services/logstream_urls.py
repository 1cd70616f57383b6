from django.urls import path

from services import logstream_views as views

urlpatterns = [
    path("settings/log-stream/", views.settings_page, name="log_stream"),
    path("settings/log-stream/test/", views.send_test_line, name="log_stream_test"),
    path("settings/log-stream/delete/", views.delete_stream, name="log_stream_delete"),
    path(
        "settings/log-stream/services/<str:service_id>/",
        views.service_setting,
        name="log_stream_service",
    ),
]

from django.contrib.auth import views as auth_views
from django.urls import path

from services import views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="auth/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspaces/<str:workspace_id>/", views.services_list, name="services"),
    path("workspaces/<str:workspace_id>/api-keys/", views.api_keys, name="api_keys"),
    path(
        "workspaces/<str:workspace_id>/api-keys/<int:key_id>/revoke/",
        views.revoke_api_key,
        name="revoke_api_key",
    ),
    path("workspaces/<str:workspace_id>/usage/", views.usage, name="usage"),
    path("services/<str:service_id>/", views.service_home, name="service"),
    path("services/<str:service_id>/builds/", views.build_list, name="builds"),
    path("services/<str:service_id>/builds/new/", views.trigger_build, name="trigger_build"),
    path("services/<str:service_id>/builds/<str:build_id>/", views.build_detail, name="build"),
    path(
        "services/<str:service_id>/builds/<str:build_id>/logs/",
        views.build_logs,
        name="build_logs",
    ),
    path(
        "services/<str:service_id>/builds/<str:build_id>/cancel/",
        views.cancel_build,
        name="cancel_build",
    ),
    path("services/<str:service_id>/env/", views.env_vars, name="env_vars"),
    path(
        "services/<str:service_id>/env/<path:key>/reveal/",
        views.reveal_env_var,
        name="reveal_env_var",
    ),
    path(
        "services/<str:service_id>/env/<path:key>/delete/",
        views.delete_env_var,
        name="delete_env_var",
    ),
]

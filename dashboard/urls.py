from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard.views import (
    audit,
    builds,
    env,
    hosts,
    jobs,
    limits,
    logstreams,
    usage,
    webhooks,
    workspace,
)

urlpatterns = [
    path("", workspace.home, name="home"),
    path("hosts/", hosts.hosts, name="hosts"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="auth/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspaces/<str:workspace_id>/", workspace.services_list, name="services"),
    path("workspaces/<str:workspace_id>/api-keys/", workspace.api_keys, name="api_keys"),
    path("workspaces/<str:workspace_id>/webhooks/", webhooks.webhooks_list, name="webhooks"),
    path(
        "workspaces/<str:workspace_id>/webhooks/<str:webhook_id>/",
        webhooks.webhook_detail,
        name="webhook",
    ),
    path(
        "workspaces/<str:workspace_id>/webhooks/<str:webhook_id>/delete/",
        webhooks.webhook_delete,
        name="webhook_delete",
    ),
    path(
        "workspaces/<str:workspace_id>/webhooks/<str:webhook_id>/events/<str:event_id>/resend/",
        webhooks.webhook_resend,
        name="webhook_resend",
    ),
    path(
        "workspaces/<str:workspace_id>/api-keys/<int:key_id>/revoke/",
        workspace.revoke_api_key,
        name="revoke_api_key",
    ),
    path("workspaces/<str:workspace_id>/usage/", usage.usage, name="usage"),
    path("workspaces/<str:workspace_id>/audit/", audit.audit_log, name="audit_log"),
    path("workspaces/<str:workspace_id>/usage/budget/", limits.set_budget, name="set_budget"),
    path("services/<str:service_id>/settings/", limits.service_settings, name="service_settings"),
    path(
        "services/<str:service_id>/settings/masking/",
        limits.service_masking,
        name="service_masking",
    ),
    path("services/<str:service_id>/", workspace.service_home, name="service"),
    path("services/<str:service_id>/builds/", builds.build_list, name="builds"),
    path("services/<str:service_id>/builds/new/", builds.trigger_build, name="trigger_build"),
    path("services/<str:service_id>/builds/<str:build_id>/", builds.build_detail, name="build"),
    path(
        "services/<str:service_id>/builds/<str:build_id>/logs/",
        builds.build_logs,
        name="build_logs",
    ),
    path(
        "services/<str:service_id>/builds/<str:build_id>/cancel/",
        builds.cancel_build,
        name="cancel_build",
    ),
    path("services/<str:service_id>/env/", env.env_vars, name="env_vars"),
    path(
        "services/<str:service_id>/env/<path:key>/reveal/",
        env.reveal_env_var,
        name="reveal_env_var",
    ),
    path(
        "services/<str:service_id>/env/<path:key>/delete/",
        env.delete_env_var,
        name="delete_env_var",
    ),
    path("services/<str:service_id>/jobs/", jobs.job_list, name="jobs"),
    path("services/<str:service_id>/jobs/run/", jobs.run_job, name="run_job"),
    path("services/<str:service_id>/jobs/head/", jobs.job_list_head, name="jobs_head"),
    path("services/<str:service_id>/jobs/<str:job_id>/", jobs.job_detail, name="job"),
    path("services/<str:service_id>/jobs/<str:job_id>/row/", jobs.job_row, name="job_row"),
    path("services/<str:service_id>/jobs/<str:job_id>/logs/", jobs.job_logs, name="job_logs"),
    path(
        "services/<str:service_id>/jobs/<str:job_id>/logs.txt",
        jobs.job_log_download,
        name="job_log_download",
    ),
    path("services/<str:service_id>/jobs/<str:job_id>/cancel/", jobs.cancel, name="cancel_job"),
    path("services/<str:service_id>/jobs/<str:job_id>/rerun/", jobs.rerun, name="rerun_job"),
    path("settings/log-stream/", logstreams.settings_page, name="log_stream"),
    path("settings/log-stream/test/", logstreams.send_test_line, name="log_stream_test"),
    path("settings/log-stream/delete/", logstreams.delete_stream, name="log_stream_delete"),
    path(
        "settings/log-stream/services/<str:service_id>/",
        logstreams.service_setting,
        name="log_stream_service",
    ),
]

from django.urls import path

from jobs import views

urlpatterns = [
    path("services/<str:service_id>/jobs/", views.job_list, name="jobs"),
    path("services/<str:service_id>/jobs/run/", views.run_job, name="run_job"),
    path("services/<str:service_id>/jobs/<str:job_id>/", views.job_detail, name="job"),
    path("services/<str:service_id>/jobs/<str:job_id>/row/", views.job_row, name="job_row"),
    path("services/<str:service_id>/jobs/<str:job_id>/logs/", views.job_logs, name="job_logs"),
    path(
        "services/<str:service_id>/jobs/<str:job_id>/logs.txt",
        views.job_log_download,
        name="job_log_download",
    ),
    path("services/<str:service_id>/jobs/<str:job_id>/cancel/", views.cancel, name="cancel_job"),
    path("services/<str:service_id>/jobs/<str:job_id>/rerun/", views.rerun, name="rerun_job"),
]

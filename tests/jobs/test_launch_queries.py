"""What creating a job costs the database: every job of a busy installation goes through it
(``bench_runner.py --only throughput`` creates 100 at once)."""

from jobs.launch import create_job
from jobs.models import Job
from services.models import EnvVar


def test_create_job_costs_a_few_queries(
    service, make_build, django_assert_num_queries, django_capture_on_commit_callbacks
):
    build = make_build(service)
    EnvVar.objects.create(service=service, key="TOKEN", value="s3cret-value", secret=True)
    EnvVar.objects.create(service=service, key="A_PLAIN", value="plain")
    EnvVar.objects.create(service=service, key="Z_KEY", value="zed", secret=True)
    # The savepoint and its release; the service locked with its plan and workspace; the
    # current build (the latest successful build, then any later deploy of an older one); the
    # env vars; the snapshot and the job. The start message goes after the commit.
    with django_capture_on_commit_callbacks(execute=False), django_assert_num_queries(8):
        job = create_job(service, "echo hi")
    job = Job.objects.select_related("env_snapshot").get(pk=job.pk)
    assert job.plan_id == service.plan_id
    assert job.build_id == build.id
    assert job.env_snapshot.values == {"A_PLAIN": "plain", "TOKEN": "s3cret-value", "Z_KEY": "zed"}
    assert job.env_snapshot.secret_keys == ["TOKEN", "Z_KEY"]


def test_create_job_with_a_plan_id_looks_up_the_valid_plans(
    service, make_build, django_assert_num_queries, django_capture_on_commit_callbacks
):
    make_build(service)
    with django_capture_on_commit_callbacks(execute=False), django_assert_num_queries(9):
        job = create_job(service, "true", "plan-srv-008")
    assert job.plan_id == "plan-srv-008"

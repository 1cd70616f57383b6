"""The dashboard's overrides and limits: the Run job form's timeout and env var overrides, the
job page showing them (keys, never values), rerun keeping them, a service's Settings page
(``maxConcurrentJobs``) and the budget on the Usage page. Admins change limits; a viewer gets a
403, another workspace's admin a 404."""

from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.models import EnvVar, Service, Workspace
from tests.helpers import htmx


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("jobs.launch.enqueue_start", lambda job_id: True)


def run_url(service):
    return f"/services/{service.id}/jobs/run/"


# The Run job form ------------------------------------------------------------------------------


def test_the_run_form_creates_a_job_with_overrides(developer, service, build, login):
    EnvVar.objects.create(service=service, key="DEBUG", value="0")
    r = login(developer).post(
        run_url(service),
        {
            "start_command": "env",
            "plan": service.plan_id,
            "timeout_seconds": "120",
            "env_overrides": "DEBUG=1\n\nURL=https://x.test/?a=b\n",
        },
    )
    assert r.status_code == 302, r.content
    job = Job.objects.get()
    assert job.timeout_seconds == 120
    assert job.env_override_keys == ["DEBUG", "URL"]
    assert job.env_snapshot.values == {"DEBUG": "1", "URL": "https://x.test/?a=b"}
    assert service.env_dict() == {"DEBUG": "0"}


def test_the_run_form_offers_the_overrides(owner, service, build, login):
    body = login(owner).get(f"/services/{service.id}/jobs/").content.decode()
    assert 'name="timeout_seconds"' in body
    assert 'name="env_overrides"' in body


@pytest.mark.parametrize(
    ("fields", "error_id", "text"),
    [
        ({"timeout_seconds": "0"}, "id_timeout_seconds_error", "greater than or equal to 1"),
        ({"timeout_seconds": "99999999"}, "id_timeout_seconds_error", "JOB_MAX_RUNTIME"),
        ({"env_overrides": "NO_EQUALS"}, "id_env_overrides_error", "line 1: write KEY=value"),
        ({"env_overrides": "1BAD=x"}, "id_env_overrides_error", "override 1:"),
        ({"env_overrides": "A=1\nA=2"}, "id_env_overrides_error", "duplicate key"),
        ({"env_overrides": "A=\x1b"}, "id_env_overrides_error", "control character"),
    ],
)
def test_bad_overrides_are_400_inline(owner, service, build, login, fields, error_id, text):
    data = {"start_command": "true", "plan": service.plan_id, **fields}
    r = login(owner).post(run_url(service), data, **htmx("run-job"))
    assert r.status_code == 400
    body = r.content.decode()
    assert f'id="{error_id}"' in body
    assert text in body
    assert not Job.objects.exists()


def test_the_run_form_says_when_the_budget_is_used_up(owner, service, build, workspace, login):
    Workspace.objects.filter(pk=workspace.pk).update(monthly_budget=Decimal("0"))
    r = login(owner).post(
        run_url(service), {"start_command": "true", "plan": service.plan_id}, **htmx("run-job")
    )
    assert r.status_code == 400
    assert "monthly budget of $0.00 would be exceeded" in r.content.decode()
    assert not Job.objects.exists()


# The job page and rerun ------------------------------------------------------------------------


def test_the_job_page_shows_the_timeout_and_override_keys_never_values(
    owner, viewer, service, build, login
):
    job = create_job(
        service, "true", timeout_seconds=90, env_overrides=[("API_TOKEN", "tok-<secret>-1")]
    )
    for user in (viewer, owner):
        body = login(user).get(f"/services/{service.id}/jobs/{job.id}/").content.decode()
        assert "1 min 30 s" in body
        assert "<code>API_TOKEN</code>" in body
        assert "tok-" not in body
        assert "secret" not in body


def test_a_pending_job_page_shows_why_it_waits(viewer, service, build, login):
    job = create_job(service, "true")
    Job.objects.filter(pk=job.pk).update(
        note="waiting: 2 of 2 concurrent jobs of this service are running"
    )
    body = login(viewer).get(f"/services/{service.id}/jobs/{job.id}/").content.decode()
    assert "waiting: 2 of 2 concurrent jobs of this service are running" in body


def test_rerun_keeps_the_overrides(developer, service, build, login):
    EnvVar.objects.create(service=service, key="DEBUG", value="0")
    first = create_job(service, "env", timeout_seconds=7, env_overrides=[("DEBUG", "2")])
    EnvVar.objects.filter(service=service, key="DEBUG").update(value="changed")
    EnvVar.objects.create(service=service, key="LATER", value="new")
    r = login(developer).post(f"/services/{service.id}/jobs/{first.id}/rerun/")
    assert r.status_code == 302
    again = Job.objects.exclude(pk=first.pk).get()
    assert again.timeout_seconds == 7
    assert again.env_override_keys == ["DEBUG"]
    # The service's latest env, with the job's own override on top.
    assert again.env_snapshot.values == {"DEBUG": "2", "LATER": "new"}


# A service's Settings page ---------------------------------------------------------------------


def settings_url(service):
    return f"/services/{service.id}/settings/"


def test_an_admin_sets_a_services_limit(owner, service, login):
    client = login(owner)
    assert "no limit" in client.get(settings_url(service)).content.decode()
    r = client.post(settings_url(service), {"max_concurrent_jobs": "2"})
    assert r.status_code == 302
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs == 2
    assert "at most 2 at once" in client.get(settings_url(service)).content.decode()
    client.post(settings_url(service), {"max_concurrent_jobs": ""})
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


def test_a_bad_limit_is_400_inline(owner, service, login):
    r = login(owner).post(settings_url(service), {"max_concurrent_jobs": "0"})
    assert r.status_code == 400
    assert 'id="id_max_concurrent_jobs_error"' in r.content.decode()
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


def test_a_viewer_reads_the_limit_but_cannot_set_it(viewer, developer, service, login):
    body = login(viewer).get(settings_url(service)).content.decode()
    assert "Only workspace admins can change the limits." in body
    assert 'name="max_concurrent_jobs"' not in body
    for user in (viewer, developer):
        assert (
            login(user).post(settings_url(service), {"max_concurrent_jobs": "1"}).status_code == 403
        )
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


def test_another_workspaces_admin_gets_a_404(outsider, service, login, client):
    assert login(outsider).get(settings_url(service)).status_code == 404
    assert (
        login(outsider).post(settings_url(service), {"max_concurrent_jobs": "1"}).status_code == 404
    )
    assert client.post(settings_url(service), {"max_concurrent_jobs": "1"}).status_code == 302
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


# The budget on the Usage page ------------------------------------------------------------------


def budget_url(workspace):
    return f"/workspaces/{workspace.id}/usage/budget/"


def test_the_usage_page_shows_the_budget_spent_and_left(owner, workspace, service, make_job, login):
    Workspace.objects.filter(pk=workspace.pk).update(monthly_budget=Decimal("10"))
    make_job(finished_at=timezone.now(), cost=Decimal("2.5"))
    make_job(status=JobStatus.RUNNING)
    body = login(owner).get(f"/workspaces/{workspace.id}/usage/").content.decode()
    assert '<dd id="budget-amount">$10.00</dd>' in body
    assert 'id="budget-spent">$2.50 ' in body  # + a running job: 5 s of Starter
    assert 'id="budget-left">$7.50' in body
    assert 'name="monthly_budget"' in body


def test_an_admin_sets_the_budget(owner, workspace, login):
    r = login(owner).post(budget_url(workspace), {"monthly_budget": "25.50"})
    assert r.status_code == 302
    assert r["Location"] == f"/workspaces/{workspace.id}/usage/"
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget == Decimal("25.50")
    login(owner).post(budget_url(workspace), {"monthly_budget": ""})
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


def test_a_bad_budget_is_400_inline(owner, workspace, login):
    r = login(owner).post(budget_url(workspace), {"monthly_budget": "-3"})
    assert r.status_code == 400
    assert 'id="id_monthly_budget_error"' in r.content.decode()


def test_only_admins_set_the_budget(viewer, developer, workspace, login):
    body = login(viewer).get(f"/workspaces/{workspace.id}/usage/").content.decode()
    assert 'name="monthly_budget"' not in body
    for user in (viewer, developer):
        assert login(user).post(budget_url(workspace), {"monthly_budget": "1"}).status_code == 403
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


def test_another_workspaces_admin_cannot_set_the_budget(outsider, workspace, login):
    assert login(outsider).post(budget_url(workspace), {"monthly_budget": "1"}).status_code == 404
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


def test_setting_the_budget_is_post_only(owner, workspace, login):
    assert login(owner).get(budget_url(workspace)).status_code == 405


def test_the_usage_page_lists_the_services_limits(viewer, workspace, service, make_job, login):
    url = f"/workspaces/{workspace.id}/usage/"
    assert "No service limits how many" in login(viewer).get(url).content.decode()
    Service.objects.filter(pk=service.pk).update(max_concurrent_jobs=1)
    make_job(status=JobStatus.RUNNING)
    make_job(
        status=JobStatus.PENDING, note="waiting: 1 of 1 concurrent jobs of this service are running"
    )
    body = login(viewer).get(url).content.decode()
    row = body[body.index(f'href="/services/{service.id}/settings/"') :].split("</tr>")[0]
    assert '<td class="num">1</td><td class="num">1</td><td class="num">1</td>' in row

from django.utils import timezone

from jobs.models import Job, JobStatus
from tests.helpers import htmx


def cancel_url(job):
    return f"/services/{job.service_id}/jobs/{job.id}/cancel/"


def rerun_url(job):
    return f"/services/{job.service_id}/jobs/{job.id}/rerun/"


def test_cancel_a_pending_job(developer, make_job, login):
    job = make_job(status=JobStatus.PENDING)
    r = login(developer).post(cancel_url(job))
    assert r.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.canceled_by == developer


def test_cancel_from_a_row_returns_the_row(owner, make_job, login):
    job = make_job(status=JobStatus.PENDING)
    r = login(owner).post(cancel_url(job), **htmx(f"row-{job.id}"))
    body = r.content.decode()
    assert body.lstrip().startswith(f'<tr id="row-{job.id}"')
    assert 'class="badge canceled"' in body


def test_cancel_from_the_job_page_returns_the_summary(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    r = login(owner).post(cancel_url(job), **htmx("job-summary"))
    body = r.content.decode()
    assert body.lstrip().startswith('<section id="job-summary"')
    assert "Canceling…" in body
    job.refresh_from_db()
    assert job.cancel_requested_at is not None


def test_cancel_buttons_ask_for_confirmation(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    client = login(owner)
    assert (
        f'hx-confirm="Cancel job {job.id}?"'
        in client.get(f"/services/{job.service_id}/jobs/").content.decode()
    )
    assert (
        f'hx-confirm="Cancel job {job.id}?"'
        in client.get(f"/services/{job.service_id}/jobs/{job.id}/").content.decode()
    )


def test_cancel_a_finished_job_is_400(owner, make_job, login):
    job = make_job(status=JobStatus.SUCCEEDED)
    r = login(owner).post(cancel_url(job), **htmx())
    assert r.status_code == 400
    assert b"already succeeded" in r.content


def test_viewer_cannot_cancel(viewer, make_job, login):
    job = make_job(status=JobStatus.PENDING)
    assert login(viewer).post(cancel_url(job)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_outsider_cannot_cancel(outsider, make_job, login):
    job = make_job(status=JobStatus.PENDING)
    assert login(outsider).post(cancel_url(job)).status_code == 404


def test_anonymous_cannot_cancel(client, make_job):
    job = make_job(status=JobStatus.PENDING)
    assert client.post(cancel_url(job)).status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_cancel_get_is_405(owner, make_job, login):
    assert login(owner).get(cancel_url(make_job())).status_code == 405


def test_rerun_creates_a_job_with_the_same_command_and_plan(developer, service, make_job, login):
    job = make_job(command="echo again", plan=service.valid_plans().get(id="plan-srv-008"))
    r = login(developer).post(rerun_url(job))
    new = Job.objects.exclude(pk=job.pk).get()
    assert r.status_code == 302
    assert r["Location"] == f"/services/{job.service_id}/jobs/{new.id}/"
    assert new.start_command == "echo again"
    assert new.plan_id == "plan-srv-008"
    assert new.created_by == developer


def test_rerun_from_the_list_returns_a_row(owner, make_job, login):
    job = make_job()
    r = login(owner).post(rerun_url(job), **htmx("job-rows"))
    new = Job.objects.exclude(pk=job.pk).get()
    assert r.content.decode().lstrip().startswith(f'<tr id="row-{new.id}"')


def test_rerun_from_the_job_page_redirects_the_browser(owner, make_job, login):
    job = make_job()
    r = login(owner).post(rerun_url(job), **htmx("job-summary"))
    new = Job.objects.exclude(pk=job.pk).get()
    assert r["HX-Redirect"] == f"/services/{job.service_id}/jobs/{new.id}/"


def test_viewer_cannot_rerun(viewer, make_job, login):
    job = make_job()
    assert login(viewer).post(rerun_url(job)).status_code == 403
    assert Job.objects.count() == 1


def test_outsider_cannot_rerun(outsider, make_job, login):
    assert login(outsider).post(rerun_url(make_job())).status_code == 404


def test_rerun_without_a_build_is_400(owner, make_job, login):
    job = make_job()
    job.service.builds.update(status="failed")
    r = login(owner).post(rerun_url(job), **htmx())
    assert r.status_code == 400
    assert b"no successful build" in r.content


def test_rerun_buttons_ask_for_confirmation(owner, make_job, login):
    job = make_job(command="echo <x>")
    client = login(owner)
    listing = client.get(f"/services/{job.service_id}/jobs/").content.decode()
    assert 'hx-confirm="Run “echo &lt;x&gt;” again with the latest build?"' in listing
    page = client.get(f"/services/{job.service_id}/jobs/{job.id}/").content.decode()
    assert 'hx-confirm="Run this command again with the latest build and env vars?"' in page
    assert 'hx-confirm="Run this command again with its own image and env vars?"' in page


def test_rerun_exactly_runs_the_jobs_own_build_and_env(owner, make_job, make_build, login):
    job = make_job(command="echo again")
    make_build(job.service, image_id="sha256:" + "1" * 64)  # a newer build
    client = login(owner)
    r = client.post(rerun_url(job), {"exact": "1"})
    exact = Job.objects.exclude(pk=job.pk).get()
    assert r["Location"] == f"/services/{job.service_id}/jobs/{exact.id}/"
    assert (exact.build_id, exact.env_snapshot_id, exact.exact) == (
        job.build_id,
        job.env_snapshot_id,
        True,
    )
    page = client.get(r["Location"]).content.decode()
    assert f'href="/services/{job.service_id}/jobs/{job.id}/"><code>{job.id}</code></a>' in page
    assert "exactly: its image and env" in page
    client.post(rerun_url(job))
    latest = Job.objects.exclude(pk__in=[job.pk, exact.pk]).get()
    assert (latest.exact, latest.rerun_of_id) == (False, job.id)
    assert latest.build_id != job.build_id


def test_rerun_exactly_says_when_the_image_is_gone(owner, make_job, login):
    job = make_job()
    job.build.image_removed_at = timezone.now()
    job.build.save()
    client = login(owner)
    page = client.get(f"/services/{job.service_id}/jobs/{job.id}/").content.decode()
    assert "image was removed by image cleanup on" in page
    r = client.post(rerun_url(job), {"exact": "1"}, **htmx())
    assert r.status_code == 400
    assert b"rerun it on the latest build instead" in r.content
    assert Job.objects.count() == 1


def test_the_job_page_links_rerun_with_changes_for_those_who_may_run(
    developer, viewer, make_job, login
):
    job = make_job()
    page = f"/services/{job.service_id}/jobs/{job.id}/"
    link = f'href="/services/{job.service_id}/jobs/?rerun={job.id}#run-job"'
    assert link in login(developer).get(page).content.decode()
    assert "?rerun=" not in login(viewer).get(page).content.decode()
    form = login(developer).get(f"/services/{job.service_id}/jobs/?rerun={job.id}")
    assert job.start_command in form.content.decode()

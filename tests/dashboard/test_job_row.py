from jobs.models import JobStatus
from tests.helpers import htmx


def url(job):
    return f"/services/{job.service_id}/jobs/{job.id}/row/"


def test_it_returns_the_row(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    body = login(owner).get(url(job), **htmx(f"row-{job.id}")).content.decode()
    assert body.lstrip().startswith(f'<tr id="row-{job.id}"')
    assert "data-unfinished" in body.split(">", 1)[0]
    assert "hx-trigger" not in body  # the list head polls, not each row


def test_a_finished_row_stops_polling(owner, make_job, login):
    job = make_job(status=JobStatus.SUCCEEDED)
    body = login(owner).get(url(job), **htmx()).content.decode()
    assert "hx-trigger" not in body
    assert "data-unfinished" not in body
    assert 'class="badge succeeded"' in body


def test_outsider_gets_404(outsider, make_job, login):
    assert login(outsider).get(url(make_job())).status_code == 404


def test_job_of_another_service_is_404(owner, make_job, make_service, login):
    job = make_job()
    other = make_service(name="other")
    r = login(owner).get(f"/services/{other.id}/jobs/{job.id}/row/")
    assert r.status_code == 404


def test_anonymous_is_redirected(client, make_job):
    assert client.get(url(make_job())).status_code == 302


def test_post_is_405(owner, make_job, login):
    assert login(owner).post(url(make_job())).status_code == 405

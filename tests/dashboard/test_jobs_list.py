from datetime import timedelta

from django.utils import timezone

from dashboard.forms.jobs import PAGE_SIZE
from jobs.models import Job, JobStatus
from tests.helpers import htmx


def url(service):
    return f"/services/{service.id}/jobs/"


def test_it_works(owner, service, make_job, login):
    job = make_job(command="python manage.py migrate")
    r = login(owner).get(url(service))
    assert r.status_code == 200
    body = r.content.decode()
    assert job.id in body
    assert "python manage.py migrate" in body
    assert 'id="run-job"' in body
    assert "<!doctype html>" in body
    assert 'hx-headers=\'{"X-CSRFToken": ' in body


def test_it_shows_columns(owner, service, make_job, login):
    make_job(status=JobStatus.FAILED, exit_code=3)
    body = login(owner).get(url(service)).content.decode()
    for text in ("Status", "Command", "Plan", "Created", "Duration", "Cost"):
        assert text in body
    assert 'class="badge failed"' in body
    assert "5.0 s" in body
    assert "Starter" in body or service.plan.name in body


def test_it_requires_sign_in(client, service):
    r = client.get(url(service))
    assert r.status_code == 302
    assert r["Location"].startswith("/login/?next=")


def test_outsider_gets_404(outsider, service, login):
    assert login(outsider).get(url(service)).status_code == 404


def test_unknown_service_is_404(owner, login):
    assert login(owner).get("/services/srv-00000000000000000000/jobs/").status_code == 404


def test_it_rejects_post(owner, service, login):
    assert login(owner).post(url(service)).status_code == 405


def test_viewer_sees_no_run_form_or_actions(viewer, service, make_job, login):
    make_job(status=JobStatus.RUNNING)
    body = login(viewer).get(url(service)).content.decode()
    assert "run-form" not in body
    assert "Rerun" not in body
    assert "cancel_job" not in body
    assert "/cancel/" not in body


def test_it_shows_an_empty_state(owner, service, build, login):
    body = login(owner).get(url(service)).content.decode()
    assert "No jobs yet." in body


def test_it_says_when_there_is_no_build(owner, service, login):
    body = login(owner).get(url(service)).content.decode()
    assert "no successful build yet" in body


def test_it_filters_by_status(owner, service, make_job, login):
    failed = make_job(status=JobStatus.FAILED)
    ok = make_job(status=JobStatus.SUCCEEDED)
    body = login(owner).get(url(service) + "?status=failed").content.decode()
    assert failed.id in body
    assert ok.id not in body
    assert 'value="failed" checked' in body


def test_it_filters_by_several_statuses(owner, service, make_job, login):
    failed = make_job(status=JobStatus.FAILED)
    running = make_job(status=JobStatus.RUNNING)
    ok = make_job(status=JobStatus.SUCCEEDED)
    body = login(owner).get(url(service) + "?status=failed&status=running").content.decode()
    assert failed.id in body
    assert running.id in body
    assert ok.id not in body


def test_it_filters_by_created_date(owner, service, make_job, login):
    old = make_job(created_at=timezone.now() - timedelta(days=10))
    new = make_job()
    day = (timezone.now() - timedelta(days=2)).date().isoformat()
    body = login(owner).get(url(service) + f"?created_from={day}").content.decode()
    assert new.id in body
    assert old.id not in body
    body = login(owner).get(url(service) + f"?created_to={day}").content.decode()
    assert old.id in body
    assert new.id not in body


def test_filtered_empty_state_offers_to_clear(owner, service, make_job, login):
    make_job(status=JobStatus.SUCCEEDED)
    body = login(owner).get(url(service) + "?status=canceled").content.decode()
    assert "No jobs match these filters." in body


def test_bad_filters_are_400_naming_the_field(owner, service, login):
    client = login(owner)
    r = client.get(url(service) + "?status=exploded")
    assert r.status_code == 400
    assert b"status" in r.content
    r = client.get(url(service) + "?created_from=yesterday")
    assert r.status_code == 400
    assert b"created_from" in r.content
    r = client.get(url(service) + "?cursor=nonsense")
    assert r.status_code == 400
    assert b"cursor" in r.content
    r = client.get(url(service) + "?created_from=2026-02-01&created_to=2026-01-01")
    assert r.status_code == 400
    assert b"created_to" in r.content


def test_cursor_of_another_service_is_400(
    owner, service, make_service, make_build, make_job, login
):
    other = make_service(name="other")
    make_build(other)
    job = make_job(other)
    r = login(owner).get(url(service) + f"?cursor={job.id}")
    assert r.status_code == 400


def test_it_paginates_with_a_cursor(owner, service, make_job, login):
    base = timezone.now()
    jobs = [make_job(created_at=base - timedelta(seconds=i)) for i in range(PAGE_SIZE + 5)]
    client = login(owner)
    body = client.get(url(service)).content.decode()
    assert jobs[0].id in body
    assert jobs[PAGE_SIZE - 1].id in body
    assert jobs[PAGE_SIZE].id not in body
    assert f"cursor={jobs[PAGE_SIZE - 1].id}" in body
    r = client.get(url(service) + f"?cursor={jobs[PAGE_SIZE - 1].id}", **htmx("load-more"))
    page = r.content.decode()
    assert "<!doctype html>" not in page
    assert page.lstrip().startswith("<tr")
    assert jobs[PAGE_SIZE].id in page
    assert jobs[-1].id in page
    assert jobs[0].id not in page
    assert 'id="load-more"' not in page


def test_load_more_keeps_the_filters_in_both_its_links(owner, service, make_job, login):
    """The link's query string (``{% querystring %}``, written once for href and hx-get) is the
    page's own with the cursor set, escaped as the tag escapes it."""
    base = timezone.now()
    jobs = [
        make_job(status=JobStatus.FAILED, created_at=base - timedelta(seconds=i))
        for i in range(PAGE_SIZE + 1)
    ]
    body = login(owner).get(url(service) + "?status=failed&q=&tz=UTC").content.decode()
    more = f"?status=failed&amp;q=&amp;tz=UTC&amp;cursor={jobs[PAGE_SIZE - 1].id}"
    assert (
        f'<a class="button" href="{more}" hx-get="{url(service)}{more}" hx-target="#load-more" '
        'hx-swap="outerHTML">Load more</a>'
    ) in body


def test_cursor_breaks_ties_on_equal_timestamps(owner, service, make_job, login):
    same = timezone.now()
    jobs = sorted(
        (make_job(created_at=same) for _ in range(PAGE_SIZE + 2)), key=lambda j: j.id, reverse=True
    )
    client = login(owner)
    first = client.get(url(service)).content.decode()
    rest = client.get(url(service) + f"?cursor={jobs[PAGE_SIZE - 1].id}", **htmx()).content.decode()
    for job in jobs:
        assert (job.id in first) != (job.id in rest)


def test_htmx_filter_request_gets_the_table_partial(owner, service, make_job, login):
    job = make_job(status=JobStatus.FAILED)
    r = login(owner).get(url(service) + "?status=failed", **htmx("jobs"))
    body = r.content.decode()
    assert body.lstrip().startswith('<section id="jobs"')
    assert job.id in body
    assert 'id="run-job"' not in body


def test_history_restore_gets_the_full_page(owner, service, make_job, login):
    make_job()
    r = login(owner).get(url(service), **htmx(HTTP_HX_HISTORY_RESTORE_REQUEST="true"))
    assert "<!doctype html>" in r.content.decode()


def test_rows_do_not_poll_the_list_head_does(owner, service, make_job, login):
    """One poll for the whole list (static/js/jobslist.js asks the head endpoint), none per
    row: unfinished rows are only marked for it."""
    running = make_job(status=JobStatus.RUNNING)
    done = make_job(status=JobStatus.SUCCEEDED)
    body = login(owner).get(url(service)).content.decode()
    assert 'hx-trigger="every' not in body
    assert "/row/" not in body
    assert f'data-head-url="/services/{service.id}/jobs/head/"' in body
    assert f'<tr id="row-{running.id}" class="job running" data-href=' in body
    row = body.split(f'<tr id="row-{running.id}"', 1)[1].split(">", 1)[0]
    assert "data-unfinished" in row
    row = body.split(f'<tr id="row-{done.id}"', 1)[1].split(">", 1)[0]
    assert "data-unfinished" not in row


def test_it_escapes_commands(owner, service, make_job, login):
    make_job(command="echo '<script>alert(1)</script>' <b>bold</b>")
    body = login(owner).get(url(service)).content.decode()
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>bold" not in body


def test_it_lists_only_this_services_jobs(
    owner, service, make_service, make_build, make_job, login
):
    other = make_service(name="other")
    make_build(other)
    mine, theirs = make_job(), make_job(other)
    body = login(owner).get(url(service)).content.decode()
    assert mine.id in body
    assert theirs.id not in body


def test_it_costs_a_few_queries_whatever_the_page(
    owner, service, make_job, login, django_assert_max_num_queries
):
    for _ in range(30):
        make_job()
    client = login(owner)
    with django_assert_max_num_queries(12):
        client.get(url(service))
    assert Job.objects.count() == 30


def test_the_page_and_its_partial_tell_caches_they_differ(owner, service, make_job, login):
    """The filters push the partial's URL: without Vary the browser's Back to it shows the
    partial it cached (tests/e2e/test_jobs_list.py, Clear filters)."""
    make_job()
    client = login(owner)
    for response in (
        client.get(url(service) + "?status=failed"),
        client.get(url(service) + "?status=failed", **htmx()),
    ):
        vary = {v.strip().lower() for v in response["Vary"].split(",")}
        assert {"hx-request", "hx-history-restore-request"} <= vary, response["Vary"]

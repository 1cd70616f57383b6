from datetime import timedelta

from django.utils import timezone

from dashboard.forms.jobs import LOG_PAGE
from jobs.models import Job, JobStatus
from tests.helpers import add_lines, htmx


def url(job, query=""):
    return f"/services/{job.service_id}/jobs/{job.id}/logs/{query}"


def test_tail_returns_lines_after_the_cursor_and_a_new_poller(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=["a", "b", "c"])
    body = (
        login(owner).get(url(job, "?after=1&status=running"), **htmx("log-poller")).content.decode()
    )
    assert 'id="L2"' not in body
    assert 'id="L3"' in body
    assert 'id="L4"' in body
    assert "?after=3&amp;status=running" in body
    assert "job-summary" not in body  # status unchanged: no summary refresh


def test_tail_with_nothing_new_returns_only_the_poller(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=["a"])
    body = login(owner).get(url(job, "?after=1&status=running"), **htmx()).content.decode()
    assert body.strip().startswith('<li id="log-poller"')
    assert "?after=1&amp;" in body


def test_a_status_change_refreshes_the_summary_out_of_band(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=["a"])
    body = login(owner).get(url(job, "?after=0&status=pending"), **htmx()).content.decode()
    assert (
        '<section id="job-summary" class="card summary" aria-labelledby="job-h" hx-swap-oob="true"'
        in body
    )
    assert 'class="badge running"' in body
    assert '<span id="log-live" hx-swap-oob="true"><span class="live"' in body


def test_a_pending_jobs_poll_brings_its_summary_with_why_it_waits_now(owner, make_job, login):
    # The page loaded before the worker took the start message ("Waiting for a runner"); the
    # worker then found the service's one slot taken: the next poll shows that, though the
    # status stayed pending.
    job = make_job(status=JobStatus.PENDING)
    client = login(owner)
    page = client.get(f"/services/{job.service_id}/jobs/{job.id}/").content.decode()
    assert "1 of 1 concurrent jobs" not in page
    Job.objects.filter(pk=job.pk).update(
        note="waiting: 1 of 1 concurrent jobs of this service are running"
    )
    body = client.get(url(job, "?after=0&status=pending"), **htmx()).content.decode()
    assert '<section id="job-summary" class="card summary"' in body
    assert 'hx-swap-oob="true"' in body
    assert "waiting: 1 of 1 concurrent jobs of this service are running" in body
    running = make_job(status=JobStatus.RUNNING, lines=["a"])
    body = client.get(url(running, "?after=1&status=running"), **htmx()).content.decode()
    assert "job-summary" not in body  # a running job's summary waits for its status to change


def test_the_live_badge_goes_with_the_final_status_while_the_log_settles(owner, make_job, login):
    job = make_job(status=JobStatus.SUCCEEDED, finished_at=timezone.now(), lines=["a"])
    body = login(owner).get(url(job, "?after=0&status=running"), **htmx()).content.decode()
    assert 'id="log-poller"' in body  # still polled a moment, in case of late lines
    assert '<span id="log-live" hx-swap-oob="true"></span>' in body  # but no longer "live"


def test_polling_stops_once_the_job_has_finished(owner, make_job, login):
    job = make_job(
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now() - timedelta(seconds=30),
        lines=["a", "b"],
    )
    body = login(owner).get(url(job, "?after=1&status=running"), **htmx()).content.decode()
    assert 'id="L3"' in body
    assert "log-poller" not in body
    assert 'hx-swap-oob="true"' in body
    assert 'class="badge succeeded"' in body


def test_a_just_finished_job_is_polled_a_moment_longer(owner, make_job, login):
    job = make_job(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    body = login(owner).get(url(job, "?after=0&status=succeeded"), **htmx()).content.decode()
    assert 'id="log-poller"' in body


def test_a_long_backlog_is_caught_up_at_once(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=[f"l{i}" for i in range(LOG_PAGE + 10)])
    body = login(owner).get(url(job, "?after=0&status=running"), **htmx()).content.decode()
    assert f'id="L{LOG_PAGE + 1}"' in body
    assert f'id="L{LOG_PAGE + 2}"' not in body
    assert 'hx-trigger="load"' in body
    assert f"?after={LOG_PAGE}&amp;" in body


def test_load_earlier_returns_the_page_before(owner, make_job, login):
    job = make_job(lines=[f"l{i}" for i in range(1, 2 * LOG_PAGE + 11)])
    body = (
        login(owner)
        .get(url(job, f"?before={LOG_PAGE + 11}"), **htmx("log-earlier"))
        .content.decode()
    )
    assert 'id="L12"' in body
    assert f'id="L{LOG_PAGE + 11}"' in body
    assert f'id="L{LOG_PAGE + 12}"' not in body
    assert 'id="L11"' not in body
    assert body.strip().startswith('<li id="log-earlier"')
    assert "?before=11" in body
    body = login(owner).get(url(job, "?before=11"), **htmx()).content.decode()
    assert 'id="L2"' in body
    assert "log-earlier" not in body


def test_more_search_matches(owner, make_job, login):
    job = make_job(lines=["x hit", "miss", "y HIT"])
    body = login(owner).get(url(job, "?q=%2F(%3Fi)hit%2F&after=1"), **htmx()).content.decode()
    assert 'id="L4"' in body
    assert 'id="L2"' not in body
    assert "<mark>HIT</mark>" in body


def test_only_this_jobs_lines(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=["mine"])
    other = make_job(status=JobStatus.RUNNING, lines=["theirs"])
    body = login(owner).get(url(job, "?after=0"), **htmx()).content.decode()
    assert "mine" in body
    assert "theirs" not in body
    assert other.id not in body


def test_purged_logs_return_no_lines(owner, make_job, login):
    job = make_job(status=JobStatus.SUCCEEDED, lines=["secret-ish"], logs_purged_at=timezone.now())
    body = login(owner).get(url(job, "?after=0"), **htmx()).content.decode()
    assert "secret-ish" not in body


def test_bad_cursors_are_400(owner, make_job, login):
    job = make_job()
    client = login(owner)
    for query in ("?after=-1", "?after=x", "?before=-1", "?after=1&before=5", "?status=%3Cb%3E"):
        r = client.get(url(job, query), **htmx())
        assert r.status_code == 400, query


def test_outsider_gets_404(outsider, make_job, login):
    assert login(outsider).get(url(make_job(), "?after=0")).status_code == 404


def test_anonymous_is_redirected(client, make_job):
    assert client.get(url(make_job(), "?after=0")).status_code == 302


def test_post_is_405(owner, make_job, login):
    assert login(owner).post(url(make_job())).status_code == 405


def test_a_poll_costs_a_few_queries(owner, make_job, login, django_assert_max_num_queries):
    job = make_job(status=JobStatus.RUNNING, lines=["a"])
    add_lines(job, ["b", "c"], start=2)
    client = login(owner)
    client.get(url(job, "?after=1"), **htmx())  # remembers the current workspace in the session
    with django_assert_max_num_queries(6):
        client.get(url(job, "?after=1&status=running"), **htmx())
    assert Job.objects.count() == 1


def test_the_first_poll_starts_at_sequence_zero(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    add_lines(job, ["zero", "one"], start=0)
    client = login(owner)
    page = client.get(f"/services/{job.service_id}/jobs/{job.id}/").content.decode()
    assert 'id="L1"' in page
    job = make_job(status=JobStatus.PENDING)
    page = client.get(f"/services/{job.service_id}/jobs/{job.id}/").content.decode()
    assert "/logs/?status=pending" in page  # no lines yet: no cursor
    add_lines(job, ["zero"], start=0)
    body = client.get(url(job, "?status=pending"), **htmx()).content.decode()
    assert 'id="L1"' in body
    assert "?after=0&amp;" in body


def test_an_anonymous_poll_sends_the_browser_to_sign_in(client, make_job):
    job = make_job(status=JobStatus.RUNNING)
    page = f"/services/{job.service_id}/jobs/{job.id}/"
    r = client.get(url(job, "?after=0"), **htmx(HTTP_HX_CURRENT_URL=f"http://testserver{page}"))
    assert r.status_code == 200
    assert r["HX-Redirect"] == "/login/?next=" + page.replace("/", "%2F")


def test_the_summary_refreshed_at_the_end_shows_what_the_job_used(owner, make_job, login):
    from jobs.models import JobUsage
    from jobs.usage import MiB

    job = make_job(status=JobStatus.FAILED, peak_memory_bytes=512 * MiB, cpu_seconds=0.4)
    start = job.started_at.timestamp()
    JobUsage.objects.create(
        job=job, points=[[start + 1, 300 * MiB, 0.2], [start + 2, 500 * MiB, 0.4]]
    )
    body = login(owner).get(url(job, "?after=0&status=running"), **htmx()).content.decode()
    assert 'hx-swap-oob="true"' in body
    assert "Peak memory <strong>512 MB</strong> of 512 MB" in body
    assert '<polyline class="memory"' in body


def test_a_permalink_past_the_latest_page_gets_the_page_around_its_line(owner, make_job, login):
    job = make_job()
    add_lines(job, [f"l{n}" for n in range(1, 3001)], start=0)  # seqs from 0, lines from 1
    page = f"/services/{job.service_id}/jobs/{job.id}/"
    body = login(owner).get(f"{page}?line=1700").content.decode()
    assert 'id="L1200" data-seq="1199"' in body  # half a page before line 1,700
    assert 'id="L2199"' in body
    assert 'id="L1199"' not in body
    assert 'id="L2200"' not in body
    assert "?before=1199" in body
    assert "?after=2198&amp;later=1" in body
    assert 'id="log-poller"' not in body
    # Line 5: no earlier page; line 2,500: the latest page as usual.
    body = login(owner).get(f"{page}?line=5").content.decode()
    assert 'id="L1" data-seq="0"' in body
    assert "Load earlier lines" not in body
    body = login(owner).get(f"{page}?line=2500").content.decode()
    assert 'id="L2001"' in body
    assert 'id="L3000"' in body
    assert "later=1" not in body
    assert login(owner).get(f"{page}?line=0").status_code == 400


def test_load_later_lines_pages_forward_then_polls(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    add_lines(job, [f"l{n}" for n in range(1, 2501)], start=0)
    body = login(owner).get(url(job, "?after=999&later=1"), **htmx("log-later")).content.decode()
    assert 'id="L1001"' in body
    assert 'id="L2000"' in body
    assert 'id="L2001"' not in body
    assert "?after=1999&amp;later=1" in body
    assert 'id="log-poller"' not in body
    body = login(owner).get(url(job, "?after=1999&later=1"), **htmx("log-later")).content.decode()
    assert 'id="L2500"' in body
    assert "later=1" not in body
    assert 'id="log-poller"' in body  # the live tail from there


def test_permalink_pages_and_later_pages_are_the_workspaces_own(viewer, outsider, make_job, login):
    job = make_job(lines=[f"l{n}" for n in range(1, 1500)])
    page = f"/services/{job.service_id}/jobs/{job.id}/"
    body = login(viewer).get(f"{page}?line=3").content.decode()
    assert 'id="L3"' in body
    assert "/cancel/" not in body
    assert login(viewer).get(url(job, "?after=10&later=1"), **htmx()).status_code == 200
    assert login(outsider).get(f"{page}?line=3").status_code == 404
    assert login(outsider).get(url(job, "?after=10&later=1"), **htmx()).status_code == 404


def test_search_matches_come_a_page_at_a_time(owner, make_job, login):
    from dashboard.views.jobs import SEARCH_PAGE

    job = make_job(
        lines=[f"hit {i}" if i % 2 else f"miss {i}" for i in range(2 * SEARCH_PAGE + 60)]
    )
    client = login(owner)
    first = client.get(f"/services/{job.service_id}/jobs/{job.id}/?q=hit").content.decode()
    assert first.count('<li class="line') == SEARCH_PAGE
    assert "More matches" in first
    last_seq = 2 * SEARCH_PAGE  # the 200th match: "hit 399" is seq 400
    assert f'data-seq="{last_seq}"' in first
    rest = client.get(url(job, f"?q=hit&after={last_seq}"), **htmx()).content.decode()
    assert rest.count('<li class="line') == 30
    assert "More matches" not in rest

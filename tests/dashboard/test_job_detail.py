from datetime import timedelta

from django.utils import timezone

from dashboard.forms.jobs import LOG_PAGE
from jobs.models import JobStatus
from tests.helpers import add_lines, htmx


def url(job):
    return f"/services/{job.service_id}/jobs/{job.id}/"


def test_it_shows_the_job(owner, make_job, build, login):
    job = make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3})
    body = login(owner).get(url(job)).content.decode()
    assert job.id in body
    assert "Exited with code 3" in body
    assert build.id in body
    assert "0123456" in body  # commit
    assert "alice@acme.test" in body  # who ran it
    assert "5 s billed" in body
    assert 'class="badge failed"' in body
    assert "<time datetime=" in body


def test_it_explains_an_out_of_memory_kill(owner, make_job, login):
    job = make_job(
        status=JobStatus.FAILED, reason={"oomKilled": {"memoryLimit": 512 * 1024 * 1024}}
    )
    body = login(owner).get(url(job)).content.decode()
    assert "Out of memory: exceeded 512 MB — try a larger plan" in body


def test_it_says_who_canceled(owner, developer, make_job, login):
    job = make_job(
        status=JobStatus.CANCELED, canceled_by=developer, reason={"canceledBy": developer.email}
    )
    body = login(owner).get(url(job)).content.decode()
    assert "Canceled by dave@acme.test" in body


def test_it_shows_a_cancel_button_only_while_cancelable(owner, make_job, login):
    client = login(owner)
    running = make_job(status=JobStatus.RUNNING)
    done = make_job(status=JobStatus.SUCCEEDED)
    assert "Cancel job</button>" in client.get(url(running)).content.decode()
    assert "Cancel job</button>" not in client.get(url(done)).content.decode()


def test_viewer_sees_no_actions(viewer, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    body = login(viewer).get(url(job)).content.decode()
    assert "/cancel/" not in body
    assert "/rerun/" not in body


def test_it_shows_the_latest_lines_first_with_load_earlier(owner, make_job, login):
    job = make_job(lines=[f"line {i}" for i in range(1, LOG_PAGE + 51)])
    body = login(owner).get(url(job)).content.decode()
    assert 'id="L52"' in body
    assert f'id="L{LOG_PAGE + 51}"' in body
    assert 'id="L51"' not in body
    assert "?before=51" in body
    assert "Load earlier lines" in body


def test_a_short_log_has_no_load_earlier(owner, make_job, login):
    job = make_job(lines=["one", "two"])
    body = login(owner).get(url(job)).content.decode()
    assert "Load earlier" not in body


def test_stdout_and_stderr_are_told_apart(owner, make_job, login):
    job = make_job(lines=["to out", ("to err", 2)])
    body = login(owner).get(url(job)).content.decode()
    assert 'class="line out" id="L2"' in body
    assert 'class="line err" id="L3"' in body
    assert '<span class="visually-hidden">stderr: </span>' in body


def test_log_output_is_escaped(owner, make_job, login):
    job = make_job(lines=["<script>alert(1)</script>", "a & b <img src=x onerror=alert(2)>"])
    body = login(owner).get(url(job)).content.decode()
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body


def test_an_unfinished_job_has_a_poller_after_the_last_line(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=["a", "b", "c"])
    body = login(owner).get(url(job)).content.decode()
    assert (
        f'hx-get="/services/{job.service_id}/jobs/{job.id}/logs/?after=3&amp;status=running"'
        in body
    )
    assert 'hx-trigger="every 1s"' in body


def test_a_finished_job_has_no_poller(owner, make_job, login):
    job = make_job(finished_at=timezone.now() - timedelta(minutes=1), lines=["a"])
    body = login(owner).get(url(job)).content.decode()
    assert 'id="log-poller"' not in body


def test_it_shows_when_logs_expire(owner, workspace, make_job, login):
    workspace.log_retention_days = 14
    workspace.save()
    finished = timezone.now().replace(microsecond=0)
    job = make_job(finished_at=finished)
    body = login(owner).get(url(job)).content.decode()
    expires = (finished + timedelta(days=14)).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert "Logs are kept until <time" in body
    assert expires in body
    assert "14-day retention" in body


def test_it_says_when_logs_expired(owner, make_job, login):
    job = make_job(lines=["gone"], logs_purged_at=timezone.now())
    body = login(owner).get(url(job)).content.decode()
    assert "These logs expired on" in body
    assert "The logs of this job have expired." in body
    assert "logs.txt" not in body


def test_search_highlights_matches(owner, make_job, login):
    job = make_job(lines=["Migrating users", "done", "MIGRATING orders <b>"])
    body = login(owner).get(url(job) + "?q=%2F(%3Fi)migrat%2F").content.decode()
    assert 'id="L2"' in body
    assert 'id="L4"' in body
    assert 'id="L3"' not in body
    assert "<mark>Migrat</mark>ing users" in body
    assert "<mark>MIGRAT</mark>ING orders &lt;b&gt;" in body
    assert 'value="/(?i)migrat/"' in body
    assert 'id="log-poller"' not in body


def test_search_has_the_logs_apis_text_semantics(owner, make_job, login):
    """As ``GET /v1/logs`` ``text``: plain text as written (case included), ``*`` for any
    characters, an RE2 expression between slashes; a bad one is a 400 naming the field."""
    job = make_job(lines=["Migrating users", "done", "MIGRATING orders", "moved 3 rows"])
    client = login(owner)
    body = client.get(url(job) + "?q=Migrat").content.decode()
    assert 'id="L2"' in body
    assert 'id="L4"' not in body
    body = client.get(url(job) + "?q=mov*rows").content.decode()
    assert 'id="L5"' in body
    assert 'id="L2"' not in body
    assert "<mark>moved 3 rows</mark>" in body
    body = client.get(url(job) + "?q=%2F%5Cd+rows%2F").content.decode()  # /\d+ rows/
    assert "moved <mark>3 rows</mark>" in body
    bad = client.get(url(job) + "?q=%2F(a%2F")  # /(a/
    assert bad.status_code == 400
    assert b"q:" in bad.content
    assert b"RE2" in bad.content


def test_search_escapes_before_highlighting(owner, make_job, login):
    job = make_job(lines=["a <b>&amp; c"])
    body = login(owner).get(url(job) + "?q=amp").content.decode()
    assert "&lt;b&gt;&amp;<mark>amp</mark>; c" in body


def test_search_with_no_match_says_so(owner, make_job, login):
    job = make_job(lines=["hello"])
    body = login(owner).get(url(job) + "?q=%3Cnope%3E").content.decode()
    assert "No line matches “<strong>&lt;nope&gt;</strong>”" in body


def test_htmx_search_gets_the_log_viewer_partial(owner, make_job, login):
    job = make_job(lines=["hello", "world"])
    r = login(owner).get(url(job) + "?q=world", **htmx("log-viewer"))
    body = r.content.decode()
    assert body.lstrip().startswith('<section id="log-viewer"')
    assert "<mark>world</mark>" in body


def test_htmx_without_a_target_gets_the_summary(owner, make_job, login):
    job = make_job()
    body = login(owner).get(url(job), **htmx()).content.decode()
    assert body.lstrip().startswith('<section id="job-summary"')


def test_history_restore_gets_the_full_page(owner, make_job, login):
    job = make_job()
    r = login(owner).get(url(job), **htmx("log-viewer", HTTP_HX_HISTORY_RESTORE_REQUEST="true"))
    assert "<!doctype html>" in r.content.decode()


def test_a_too_long_search_is_400(owner, make_job, login):
    r = login(owner).get(url(make_job()) + "?q=" + "x" * 201)
    assert r.status_code == 400
    assert b"q:" in r.content


def test_outsider_gets_404(outsider, make_job, login):
    assert login(outsider).get(url(make_job())).status_code == 404


def test_anonymous_is_redirected(client, make_job):
    r = client.get(url(make_job()))
    assert r.status_code == 302
    assert r["Location"].startswith("/login/")


def test_post_is_405(owner, make_job, login):
    assert login(owner).post(url(make_job())).status_code == 405


def test_the_page_costs_a_few_queries(owner, make_job, login, django_assert_max_num_queries):
    job = make_job(lines=[f"l{i}" for i in range(50)])
    add_lines(job, ["more"], start=51)
    client = login(owner)
    with django_assert_max_num_queries(10):
        client.get(url(job))


def test_a_job_nobody_ran_or_canceled_by_name(owner, make_job, login):
    job = make_job(status=JobStatus.CANCELED, created_by=None, reason={"canceledBy": "api"})
    body = login(owner).get(url(job)).content.decode()
    assert "Canceled through the API" in body
    assert "an API key" in body


def test_a_running_jobs_duration_ticks_in_the_browser(owner, make_job, login):
    running = make_job(status=JobStatus.RUNNING)
    body = login(owner).get(url(running)).content.decode()
    assert f'data-since="{running.started_at.isoformat()}"' in body
    done = make_job()
    assert "data-since" not in login(owner).get(url(done)).content.decode()


def test_it_draws_what_the_job_used_against_its_plans_limits(owner, make_job, login):
    from jobs.models import JobUsage
    from jobs.usage import MiB

    job = make_job(peak_memory_bytes=300 * MiB, cpu_seconds=1.5)
    start = job.started_at.timestamp()
    JobUsage.objects.create(
        job=job,
        points=[
            [start + 1, 100 * MiB, 0.2],
            [start + 3, 300 * MiB, 1.2],
            [start + 5, 50 * MiB, 1.5],
        ],
    )
    body = login(owner).get(url(job)).content.decode()
    assert "Peak memory <strong>300 MB</strong> of 512 MB (59%)" in body
    assert "CPU time <strong>1.5 s</strong>" in body
    assert '<svg class="usage-chart"' in body
    # Memory in 0..1 of 512 MB, drawn 120 units high: 300 MB is at y = 120 * (1 - 300/512).
    assert f"{120 * (1 - 300 / 512):.1f}" in body.split('<polyline class="memory" points="')[1]
    assert '<polyline class="cpu" points="' in body  # 0.5 and 0.15 cores of 0.5
    assert "usage-hint" not in body


def test_it_shows_nothing_of_usage_before_a_reading(owner, make_job, login):
    body = login(owner).get(url(make_job(status=JobStatus.RUNNING))).content.decode()
    assert "usage-chart" not in body
    assert "Peak memory" not in body


def test_it_hints_at_the_next_plan_and_escapes_its_name(owner, viewer, make_job, login):
    from jobs.usage import MiB
    from services.models import Plan

    Plan.objects.filter(pk="plan-srv-008").update(name="<b>Standard</b>")
    job = make_job(peak_memory_bytes=498 * MiB, cpu_seconds=0.5)
    body = login(viewer).get(url(job)).content.decode()  # viewers read jobs, and their usage
    assert "Peaked at 498 of 512 MB: try &lt;b&gt;Standard&lt;/b&gt;, 2 GB" in body
    assert "<b>Standard</b>" not in body

"""The live Jobs list: its one poll (the list head), counts on the chips, search by command,
date filters in the reader's time zone, the row's end chip, pending note and run-by, and the
run form's prices and "rerun with changes"."""

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import Job, JobStatus
from tests.helpers import htmx


def url(service):
    return f"/services/{service.id}/jobs/"


def head(service, query=""):
    return f"/services/{service.id}/jobs/head/?{query}"


def rows_of(body: str, part: str) -> str:
    """The <template class="new"> or "updated" of a head answer."""
    return body.split(f'<template class="{part}">', 1)[1].split("</template>", 1)[0]


# The list head


def test_head_brings_new_jobs_and_the_unfinished_rows_asked_for(owner, service, make_job, login):
    base = datetime.now(UTC)
    running = make_job(status=JobStatus.RUNNING, created_at=base - timedelta(minutes=3))
    shown = make_job(created_at=base - timedelta(minutes=2))
    new = make_job(status=JobStatus.PENDING, command="echo new", created_at=base)
    r = login(owner).get(head(service, f"newest={shown.id}&ids={running.id}"))
    assert r.status_code == 200
    body = r.content.decode()
    assert new.id in rows_of(body, "new")
    assert shown.id not in body
    assert running.id in rows_of(body, "updated")
    assert running.id not in rows_of(body, "new")
    assert '<span data-status="running">1</span>' in body
    assert '<span data-status="succeeded">1</span>' in body
    assert '<span data-status="pending">1</span>' in body
    assert "<!doctype html>" not in body


def test_head_without_newest_sends_the_first_page(owner, service, make_job, login):
    jobs = [make_job() for _ in range(3)]
    body = login(owner).get(head(service)).content.decode()
    for job in jobs:
        assert job.id in rows_of(body, "new")


def test_head_keeps_the_filters(owner, service, make_job, login):
    base = datetime.now(UTC)
    shown = make_job(status=JobStatus.FAILED, created_at=base - timedelta(minutes=1))
    failed = make_job(status=JobStatus.FAILED, command="make fail", created_at=base)
    ok = make_job(status=JobStatus.SUCCEEDED, command="make ok", created_at=base)
    client = login(owner)
    body = client.get(head(service, f"status=failed&newest={shown.id}")).content.decode()
    assert failed.id in body
    assert ok.id not in body
    body = client.get(head(service, f"q=OK&newest={shown.id}")).content.decode()
    assert ok.id in body
    assert failed.id not in body
    # The chips count with the other filters as they are (the search).
    assert '<span data-status="failed">0</span>' in body
    assert '<span data-status="succeeded">1</span>' in body
    body = client.get(head(service, f"q=make&newest={shown.id}")).content.decode()
    assert '<span data-status="failed">1</span>' in body


def test_head_costs_a_few_queries(owner, service, make_job, login, django_assert_max_num_queries):
    base = datetime.now(UTC)
    unfinished = [
        make_job(status=JobStatus.PENDING, created_at=base - timedelta(seconds=i))
        for i in range(20)
    ]
    ids = ",".join(job.id for job in unfinished)
    client = login(owner)
    client.get(head(service))  # the session and the zone tables are warm
    with django_assert_max_num_queries(10):
        r = client.get(head(service, f"newest={unfinished[0].id}&ids={ids}"))
    assert r.content.decode().count('<tr id="row-') == 20


def test_head_never_shows_another_workspaces_jobs(
    owner, outsider, service, other_workspace, make_service, make_build, make_job, login
):
    theirs_service = make_service(other_workspace, name="theirs")
    make_build(theirs_service)
    theirs = make_job(theirs_service, status=JobStatus.RUNNING)
    mine = make_job(status=JobStatus.RUNNING)
    client = login(owner)
    body = client.get(head(service, f"ids={theirs.id},{mine.id}")).content.decode()
    assert theirs.id not in body
    assert mine.id in body
    # Their job as the newest row of our list is a bad cursor, the same as a missing one.
    r = client.get(head(service, f"newest={theirs.id}"))
    assert r.status_code == 400
    assert b"newest" in r.content
    # And they cannot poll our list at all.
    assert login(outsider).get(head(service)).status_code == 404


def test_another_services_job_is_not_brought_by_ids(
    owner, service, make_service, make_build, make_job, login
):
    other = make_service(name="other")
    make_build(other)
    job = make_job(other, status=JobStatus.RUNNING)
    body = login(owner).get(head(service, f"ids={job.id}")).content.decode()
    assert job.id not in body


def test_a_viewer_polls_the_list_without_actions(viewer, service, make_job, login):
    job = make_job(status=JobStatus.RUNNING)
    client = login(viewer)
    page = client.get(url(service)).content.decode()
    assert job.id in page
    assert "run-form" not in page
    assert "?rerun=" not in page
    body = client.get(head(service)).content.decode()
    assert job.id in body
    assert "/rerun/" not in body
    assert "/cancel/" not in body
    assert "?rerun=" not in body


def test_bad_head_parameters_are_400_naming_them(owner, service, login):
    client = login(owner)
    for query, name in (
        ("newest=nonsense", b"newest"),
        ("ids=job-1,nonsense", b"ids"),
        ("ids=" + ",".join(["job-" + "a" * 20] * 201), b"ids"),
        ("tz=Mars/Olympus", b"tz"),
        ("status=exploded", b"status"),
    ):
        r = client.get(head(service, query))
        assert r.status_code == 400, query
        assert name in r.content, query


def test_head_requires_sign_in_and_get(client, owner, service, login):
    assert client.get(head(service)).status_code == 302
    assert login(owner).post(head(service)).status_code == 405


# Chips, search, rows


def test_the_chips_count_jobs_by_status(owner, service, make_job, login):
    make_job(status=JobStatus.FAILED)
    make_job(status=JobStatus.FAILED)
    make_job(status=JobStatus.RUNNING)
    body = login(owner).get(url(service) + "?status=running").content.decode()
    assert '<span class="count" data-status="failed">2</span>' in body
    assert '<span class="count" data-status="running">1</span>' in body
    assert '<span class="count" data-status="succeeded">0</span>' in body


def test_it_searches_commands(owner, service, make_job, login):
    migrate = make_job(command="python manage.py migrate")
    other = make_job(command="echo hi")
    client = login(owner)
    body = client.get(url(service) + "?q=MIGRATE").content.decode()
    assert migrate.id in body
    assert other.id not in body
    assert 'value="MIGRATE"' in body
    assert "Clear filters" in body
    body = client.get(url(service) + "?q=%25").content.decode()  # a literal %, not a wildcard
    assert migrate.id not in body
    assert client.get(url(service) + "?q=" + "x" * 201).status_code == 400


def test_a_filter_answer_keeps_clear_filters_and_counts_in_step(owner, service, make_job, login):
    make_job(status=JobStatus.FAILED)
    client = login(owner)
    body = client.get(url(service) + "?status=failed", **htmx("jobs")).content.decode()
    assert '<span id="clear-filters" hx-swap-oob="true"><a class="clear"' in body
    assert '<span id="chip-counts" hidden hx-swap-oob="true">' in body
    body = client.get(url(service), **htmx("jobs")).content.decode()
    assert '<span id="clear-filters" hx-swap-oob="true"></span>' in body


def test_rows_show_the_end_chip_run_by_and_relative_times(owner, service, make_job, login):
    failed = make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3})
    oom = make_job(status=JobStatus.FAILED, reason={"oomKilled": {"memoryLimit": "512Mi"}})
    api = make_job(created_by=None)
    body = login(owner).get(url(service)).content.decode()
    assert 'title="Exited with code 3">exit 3</span>' in body
    assert 'title="Out of memory: exceeded 512 MB — try a larger plan">OOM</span>' in body
    assert "alice@acme.test" in body
    assert f'<tr id="row-{failed.id}"' in body
    assert f'<tr id="row-{oom.id}"' in body
    row = body.split(f'<tr id="row-{api.id}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="hide-sm runby" title="API">API</td>' in row
    assert 'data-format="relative"' in row
    assert f'data-href="/services/{service.id}/jobs/{api.id}/"' in body
    opening = body.split(f'<tr id="row-{api.id}"', 1)[1].split(">", 1)[0]
    assert 'tabindex="0"' in opening


def test_pending_rows_say_they_wait_their_place_and_since_when(owner, service, make_job, login):
    base = datetime.now(UTC)
    first = make_job(status=JobStatus.PENDING, created_at=base - timedelta(minutes=5))
    second = make_job(status=JobStatus.PENDING, created_at=base - timedelta(minutes=1))
    body = login(owner).get(url(service)).content.decode()
    row = body.split(f'<tr id="row-{first.id}"', 1)[1].split("</tr>", 1)[0]
    assert "waiting for a runner, #1 in queue, since <time" in row
    row = body.split(f'<tr id="row-{second.id}"', 1)[1].split("</tr>", 1)[0]
    assert "waiting for a runner, #2 in queue, since <time" in row


# Time zones


def test_dates_filter_the_readers_days(owner, service, make_job, login):
    # 2026-12-02 11:30 UTC is 3 Dec 01:30 at Kiritimati (UTC+14) and 2 Dec 00:30 at Pago Pago
    # (UTC-11).
    job = make_job(created_at=datetime(2026, 12, 2, 11, 30, tzinfo=UTC))
    client = login(owner)

    def shown(query):
        return job.id in client.get(url(service) + "?" + query).content.decode()

    assert shown("created_from=2026-12-03&tz=Pacific/Kiritimati")
    assert not shown("created_to=2026-12-02&tz=Pacific/Kiritimati")
    assert shown("created_from=2026-12-02&created_to=2026-12-02&tz=Pacific/Pago_Pago")
    assert not shown("created_from=2026-12-03&tz=Pacific/Pago_Pago")
    assert not shown("created_from=2026-12-03")  # UTC without a zone
    assert shown("created_from=2026-12-02&created_to=2026-12-02")
    # The cookie the page's script sets stands in for a missing field.
    client.cookies["tz"] = "Pacific/Kiritimati"
    assert shown("created_from=2026-12-03")
    body = client.get(url(service)).content.decode()
    assert 'data-tz="Pacific/Kiritimati"' in body
    assert '<input type="hidden" name="tz" value="Pacific/Kiritimati">' in body
    # A made-up cookie is ignored (UTC), a made-up field is a 400.
    client.cookies["tz"] = "../../etc/passwd"
    assert not shown("created_from=2026-12-03")
    assert client.get(url(service) + "?tz=Nowhere/Special").status_code == 400


def test_head_filters_the_readers_days_too(owner, service, make_job, login):
    job = make_job(created_at=datetime(2026, 12, 2, 11, 30, tzinfo=UTC))
    client = login(owner)
    body = client.get(head(service, "created_from=2026-12-03&tz=Pacific/Kiritimati")).content
    assert job.id in body.decode()
    body = client.get(head(service, "created_from=2026-12-03&tz=Pacific/Pago_Pago")).content
    assert job.id not in body.decode()


# The run form


def test_the_plans_show_their_price_per_hour(owner, service, build, login):
    body = login(owner).get(url(service)).content.decode()
    plan = service.plan
    hourly = plan.price_monthly / 720
    assert f"{plan.name} — {plan.specs} — $" in body
    assert f"{float(hourly):.3g}/h" in body


def test_rerun_with_changes_prefills_the_form(owner, service, make_job, login):
    job = make_job(
        command="python manage.py migrate --plan",
        plan=service.valid_plans().get(id="plan-srv-008"),
        timeout_seconds=600,
    )
    body = login(owner).get(url(service) + f"?rerun={job.id}").content.decode()
    assert "Rerun with changes" in body
    assert 'value="python manage.py migrate --plan"' in body
    assert 'value="plan-srv-008" selected' in body
    assert 'value="600"' in body
    assert f'name="rerun_of" value="{job.id}"' in body
    assert f'href="?rerun={job.id}"' in body


def test_rerun_with_changes_of_another_workspaces_job_is_404(
    owner, service, other_workspace, make_service, make_build, make_job, login
):
    theirs = make_service(other_workspace, name="theirs")
    make_build(theirs)
    job = make_job(theirs)
    assert login(owner).get(url(service) + f"?rerun={job.id}").status_code == 404


def test_a_viewer_gets_no_rerun_form(viewer, service, make_job, login):
    job = make_job()
    body = login(viewer).get(url(service) + f"?rerun={job.id}").content.decode()
    assert "Rerun with changes" not in body
    assert "run-form" not in body


def test_the_changed_rerun_links_its_original(owner, service, make_job, login):
    job = make_job(command="echo one")
    r = login(owner).post(
        f"/services/{service.id}/jobs/run/",
        {"start_command": "echo two", "plan": service.plan_id, "rerun_of": job.id},
    )
    assert r.status_code == 302
    new = Job.objects.exclude(pk=job.pk).get()
    assert new.start_command == "echo two"
    assert new.rerun_of == job


def test_a_rerun_from_the_list_says_so(owner, service, make_job, login):
    job = make_job()
    r = login(owner).post(f"/services/{service.id}/jobs/{job.id}/rerun/", **htmx("job-rows"))
    new = Job.objects.exclude(pk=job.pk).get()
    body = r.content.decode()
    assert body.lstrip().startswith(f'<tr id="row-{new.id}"')
    assert '<div id="list-status" hx-swap-oob="innerHTML">' in body
    link = f'<a href="/services/{service.id}/jobs/{new.id}/">{new.id}</a>'
    assert f"Started {link}, a rerun of <code>{job.id}</code>" in body


def test_a_chip_stops_counting_at_the_cap(owner, service, make_job, login, settings, monkeypatch):
    from dashboard.forms import jobs as forms

    monkeypatch.setattr(forms, "COUNT_CAP", 3)
    for _ in range(4):
        make_job(status=JobStatus.FAILED)
    make_job(status=JobStatus.RUNNING)
    body = login(owner).get(url(service)).content.decode()
    assert '<span class="count" data-status="failed">3+</span>' in body
    assert '<span class="count" data-status="running">1</span>' in body


@pytest.mark.parametrize(
    "dates",
    [
        {},
        {"created_from": "2026-03-02"},
        {"created_to": "2026-03-02"},
        {"created_from": "2026-03-02", "created_to": "2026-03-03"},
    ],
)
def test_the_chip_counts_are_the_capped_counts_of_every_filter(
    service, make_job, monkeypatch, dates
):
    """PostgreSQL's one prepared statement (``_counts_sql``) counts what the UNION ALL of the
    capped selects counts, for every date filter, the cap included."""
    from django.db import connection
    from django.http import QueryDict

    from dashboard.forms import jobs as forms

    monkeypatch.setattr(forms, "COUNT_CAP", 3)
    for day, status, n in [
        (1, "failed", 5),
        (2, "failed", 2),
        (2, "running", 4),
        (3, "canceled", 1),
        (4, "succeeded", 3),
    ]:
        for _ in range(n):
            job = make_job(status=status)
            Job.objects.filter(pk=job.pk).update(created_at=datetime(2026, 3, day, 12, tzinfo=UTC))
    query = QueryDict(mutable=True)
    query.update({**dates, "tz": "UTC"})
    filters = forms.JobFilterForm(query, service=service)
    assert filters.is_valid(), filters.errors
    counted = filters.counts()
    sql, params = forms._capped(filters._unfiltered_by_status().order_by()).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(forms._grouped(sql), params)
        expected = dict.fromkeys(JobStatus.values, 0) | dict(cursor.fetchall())
    assert counted == expected
    assert max(counted.values()) <= 3
    # The embedded default's way (SQLite has no UNION of capped selects): the same counts.
    monkeypatch.setattr(connection.features, "supports_slicing_ordering_in_compound", False)
    assert filters.counts() == expected


@pytest.mark.parametrize(
    "query",
    [{}, {"status": ["failed"]}, {"status": ["failed", "running"]}, {"created_from": "2026-03-02"}],
)
def test_the_polls_compiled_queries_find_what_the_querysets_find(
    service, make_job, monkeypatch, query
):
    """The poll's new rows (``newer_than``, ties on ``created_at`` broken by id) and its rows by
    id (``rows_by_id``), compiled (services.prepared) and as ordinary querysets, are the same."""
    from django.http import QueryDict

    from dashboard.forms import jobs as forms
    from services import prepared

    jobs = []
    for n, status in enumerate(["failed", "running", "succeeded", "failed", "running"] * 3):
        job = make_job(status=status)
        # Pairs share a created_at: the cursor's ties.
        at = datetime(2026, 3, 1 + n // 5, 12, n // 2, tzinfo=UTC)
        Job.objects.filter(pk=job.pk).update(created_at=at)
        jobs.append(Job.objects.get(pk=job.pk))
    data = QueryDict(mutable=True)
    for name, value in {**query, "tz": "UTC"}.items():
        data.setlist(name, value if isinstance(value, list) else [value])
    filters = forms.JobFilterForm(data, service=service)
    assert filters.is_valid(), filters.errors
    ids = [job.pk for job in jobs[::2]]

    def found():
        keys = [None, *((job.created_at, job.pk) for job in jobs[::3])]
        newer = [[row.pk for row in filters.newer_than(key)] for key in keys]
        by_id = sorted(row.pk for row in forms.rows_by_id(service, ids))
        return newer, by_id

    for _ in range(6):  # past psycopg's prepare threshold
        compiled = found()
    monkeypatch.setattr(prepared, "enabled", False)
    assert compiled == found()
    assert any(compiled[0])
    assert compiled[1] == sorted(ids)

"""The Jobs list's row, written by a Python function (dashboard/templatetags/jobslist.py
``render_job_row``), is the HTML the template wrote (tests/dashboard/job_row_reference.html),
byte for byte, for jobs of every kind, escaping included."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.template import engines
from django.template.loader import get_template
from django.utils import timezone

from jobs.models import JobStatus

REFERENCE = Path(__file__).with_name("job_row_reference.html")

COMMANDS = [
    "echo hi",
    "<img src=x onerror=alert(1)>",
    "echo \"quoted\" 'single' & <b>bold</b>",
    "python manage.py " + "x" * 100,  # truncated at 90 and at 60
    "e\u0301" * 70,  # combining accents: 140 characters the filter counts as 70
    "",
]


def kinds(make_job, developer):
    now = timezone.now()
    yield make_job(status=JobStatus.SUCCEEDED)
    yield make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3})
    yield make_job(
        status=JobStatus.FAILED, reason={"oomKilled": {"memoryLimit": 512 * 1024 * 1024}}
    )
    yield make_job(status=JobStatus.FAILED, reason={"timedOutSeconds": 60})
    yield make_job(status=JobStatus.FAILED, reason={"startError": "no <such> image"})
    yield make_job(status=JobStatus.FAILED, reason={"evicted": True, "evictionReason": "gone"})
    yield make_job(
        status=JobStatus.CANCELED, canceled_by=developer, reason={"canceledBy": developer.email}
    )
    yield make_job(status=JobStatus.RUNNING, created_by=None)
    yield make_job(status=JobStatus.PENDING)
    waiting = make_job(status=JobStatus.PENDING, slot_waited_at=now + timedelta(seconds=3))
    waiting.queue_position = 7
    yield waiting
    for command in COMMANDS:
        yield make_job(status=JobStatus.FAILED, command=command, created_by=developer)


@pytest.mark.parametrize("can_write", [True, False])
@pytest.mark.parametrize("csrf_token", ["tok<en>", None])
def test_the_function_writes_the_templates_row(make_job, developer, service, can_write, csrf_token):
    reference = engines["django"].from_string(REFERENCE.read_text())
    row = get_template("jobs/list.html#row")
    for job in kinds(make_job, developer):
        context = {"service": service, "job": job, "can_write": can_write}
        if csrf_token:
            context["csrf_token"] = csrf_token
        html = row.render(context)
        assert html == reference.render(context), job.start_command
        assert "<img src=x" not in html
        assert "<b>" not in html


def test_the_row_escapes_the_command(make_job, service):
    job = make_job(command="<img src=x onerror=alert(1)>")
    html = get_template("jobs/list.html#row").render(
        {"service": service, "job": job, "can_write": True, "csrf_token": "t"}
    )
    assert '<code title="&lt;img src=x onerror=alert(1)&gt;">' in html
    assert 'hx-confirm="Run “&lt;img src=x onerror=alert(1)&gt;” again' in html


def test_the_rows_tag_writes_the_row_partial_of_each_job(make_job, developer, service):
    jobs = list(kinds(make_job, developer))
    loop = engines["django"].from_string(
        '{% for job in jobs %}{% include "jobs/list.html#row" %}{% endfor %}'
    )
    tag = engines["django"].from_string("{% load jobslist %}{% job_rows jobs %}")
    for can_write in (True, False):
        context = {"service": service, "jobs": jobs, "can_write": can_write, "csrf_token": "t"}
        assert tag.render(context) == loop.render(context)
    assert tag.render({"service": service, "jobs": []}) == ""


@pytest.mark.parametrize("prefix", ["/", "/oneoff/"])
def test_a_rows_link_is_the_one_reverse_writes(service, prefix):
    """``job_urls`` builds a page's 25 links from one reverse: the same URL, quoted alike, under
    any script prefix."""
    from django.urls import get_script_prefix, reverse, set_script_prefix

    from dashboard.templatetags.jobslist import job_urls

    before = get_script_prefix()
    set_script_prefix(prefix)
    try:
        url_of = job_urls(service)
        for job_id in ("job-abc123", "job-ünï", "job-a b", "job-%41", "job-~:@!$&'()*+,;="):
            assert url_of(job_id) == reverse("job", args=[service.id, job_id]), job_id
    finally:
        set_script_prefix(before)

"""Makers for the dashboard's view tests: jobs with log lines, signed-in clients."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.models import EnvSnapshot, Job, JobLogLine, JobStatus

HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target: str | None = None, **extra) -> dict:
    headers = dict(HTMX)
    if target:
        headers["HTTP_HX_TARGET"] = target
    headers.update(extra)
    return headers


@pytest.fixture
def login():
    def sign_in(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def build(service, make_build):
    return make_build(service, commit_id="0123456789abcdef0123456789abcdef01234567")


@pytest.fixture
def make_job(service, build, owner):
    def make(svc=None, *, status=JobStatus.SUCCEEDED, command="echo hi", lines=(), **fields):
        svc = svc or service
        b = build if svc == service else svc.builds.first()
        now = timezone.now()
        defaults = {"plan": svc.plan, "created_by": owner}
        if status != JobStatus.PENDING:
            defaults["started_at"] = now - timedelta(seconds=5)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED):
            defaults.update(finished_at=now, billed_seconds=5, cost=svc.plan.cost_of(5))
        if status == JobStatus.SUCCEEDED:
            defaults["exit_code"] = 0
        defaults.update(fields)
        job = Job.objects.create(
            workspace=svc.workspace,
            service=svc,
            start_command=command,
            build=b,
            env_snapshot=EnvSnapshot.capture(svc),
            status=status,
            **defaults,
        )
        add_lines(job, lines)
        return job

    return make


def add_lines(job, lines, start: int = 1):
    """Store log lines: strings go to stdout, (text, 2) tuples to stderr."""
    base = timezone.now()
    rows = []
    for i, line in enumerate(lines, start=start):
        text, stream = (line, 1) if isinstance(line, str) else line
        rows.append(
            JobLogLine(
                job=job,
                seq=i,
                timestamp=base + timedelta(microseconds=i),
                stream=stream,
                text=text,
            )
        )
    JobLogLine.objects.bulk_create(rows)
    Job.objects.filter(pk=job.pk).update(log_line_count=len(rows) + start - 1)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The personas are made with passwords; a slow hasher would dominate these tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

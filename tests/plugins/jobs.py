"""Makers of jobs that already ran, with their build and log lines (no runner involved)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import EnvSnapshot, Job, JobStatus
from tests.helpers import add_lines


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

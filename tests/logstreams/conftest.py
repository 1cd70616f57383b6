"""Fixtures for the log stream tests: a fresh forwarder per test, jobs to forward and
``store`` to give them lines (the TLS receiver is in tests/plugins/syslog.py)."""

import datetime

import pytest
from django.db import transaction
from django.db.models import F

from logstreams import forward as logstreams


@pytest.fixture
def fresh_forwarder(stream_settings):
    """A new forwarder per test, stopped (threads joined) at the end."""
    logstreams.forwarder = logstreams.Forwarder()
    yield logstreams.forwarder
    logstreams.forwarder.shutdown(timeout=1.0)


@pytest.fixture
def forwarding(fresh_forwarder):
    """The fresh forwarder, running (as in a worker serving the jobs queue)."""
    fresh_forwarder.start()
    return fresh_forwarder


def store(job, count, *, text="line {seq}", at=None):
    """Store ``count`` more lines of ``job`` as the runner does (lines and the job's count in
    one transaction, then ``lines_stored``); returns them."""
    from jobs.logs.parse import StoredLine
    from jobs.logs.store import insert_lines, notify
    from jobs.models import Job

    start = Job.objects.get(pk=job.pk).log_line_count
    at = at or datetime.datetime.now(datetime.UTC)
    batch = [
        StoredLine(
            seq,
            int(at.timestamp() * 1_000_000) + seq,
            2 if seq % 3 == 0 else 1,
            text.format(seq=seq),
        )
        for seq in range(start, start + count)
    ]
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(log_line_count=F("log_line_count") + count)
        insert_lines(job.id, batch)
    notify(job.id, batch)
    return batch


@pytest.fixture
def make_job(make_build):
    from jobs.models import EnvSnapshot, Job

    def make(service, **fields):
        build = service.latest_successful_build() or make_build(service)
        return Job.objects.create(
            workspace=service.workspace,
            service=service,
            start_command=fields.pop("start_command", "echo hi"),
            plan=service.plan,
            build=build,
            env_snapshot=EnvSnapshot.capture(service),
            **fields,
        )

    return make

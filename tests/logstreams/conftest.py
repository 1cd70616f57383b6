"""Fixtures for the log stream tests: a fresh forwarder per test, and jobs to forward (the
TLS receiver is in tests/plugins/syslog.py)."""

import pytest

from logstreams import forward as logstreams


@pytest.fixture
def fresh_forwarder(stream_settings):
    """A new forwarder per test, stopped (threads joined) at the end."""
    logstreams.forwarder = logstreams.Forwarder()
    yield logstreams.forwarder
    logstreams.forwarder.shutdown(timeout=1.0)


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

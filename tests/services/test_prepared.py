"""services.prepared: a query compiled once per shape answers what the ordinary queryset answers,
on PostgreSQL as a prepared statement, and refuses a query whose lookup changes a value."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import EnvSnapshot, Job, JobStatus
from services import prepared
from services.access import jobs_with_joins
from services.keyset import keyset_queryset
from services.prepared import Prepared

T0 = timezone.now().replace(microsecond=0) - timedelta(days=3)


def page(shape, service_id, **values):
    limit, statuses, cursor = shape
    jobs = jobs_with_joins(Job.objects.filter(service_id=service_id))
    if statuses:
        jobs = jobs.filter(status__in=values["statuses"])
    after = (values["after_at"], values["after_id"]) if cursor else None
    return keyset_queryset(jobs, after, limit)


@pytest.fixture
def built_service(service, make_build):
    make_build(service)
    return service


@pytest.fixture
def jobs(built_service, owner):
    build = built_service.builds.get()
    snapshot = EnvSnapshot.capture(built_service)
    statuses = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.PENDING]
    return [
        Job.objects.create(
            workspace=built_service.workspace,
            service=built_service,
            start_command=f"job {n}",
            plan_id="plan-srv-006",
            build=build,
            env_snapshot=snapshot,
            status=statuses[n % 4],
            created_at=T0 + timedelta(minutes=n // 2),  # pairs share a created_at: ties
            created_by=owner if n % 3 == 0 else None,
            reason={"nonZeroExit": 1} if n % 4 == 1 else {},
        )
        for n in range(30)
    ]


def fields(job):
    """What a page shows of a job and its joined rows (as job_dict reads them)."""
    return (
        job.pk,
        job.status,
        job.created_at,
        job.reason,
        job.build.image_id,
        job.env_snapshot.digest,
        job.created_by.email if job.created_by else None,
        job.canceled_by,
        sorted(job.get_deferred_fields()),
    )


def test_pages_match_the_ordinary_queryset_on_every_run(jobs, built_service):
    assert connection.vendor == "postgresql"
    query = Prepared(page)
    middle = sorted(jobs, key=lambda j: (j.created_at, j.pk), reverse=True)[9]
    cases = [
        ((5, 0, False), {}),
        ((5, 2, False), {"statuses": ["failed", "canceled"]}),
        ((7, 0, True), {"after_at": middle.created_at, "after_id": middle.pk}),
        ((4, 1, True), {"statuses": ["succeeded"], "after_at": middle.created_at,
                        "after_id": middle.pk}),
    ]  # fmt: skip
    # Past psycopg's prepare threshold and PostgreSQL's five custom plans: the prepared statement
    # and its generic plan answer the same.
    for _ in range(12):
        for shape, values in cases:
            got = query.run(shape, service_id=built_service.pk, **values)
            want = list(page(shape, built_service.pk, **values))
            assert [fields(j) for j in got] == [fields(j) for j in want]
            assert got
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert sum('FROM "jobs_job"' in sql for sql in statements) == len(cases)
    # Other values for a shape already compiled: another status, another service (none).
    got = query.run((5, 2, False), service_id=built_service.pk, statuses=["pending", "pending"])
    assert {j.status for j in got} == {"pending"}
    assert len(got) == 5
    assert query.run((5, 0, False), service_id="srv-" + "0" * 20) == []


def test_it_runs_through_djangos_cursor(jobs, built_service):
    """Query counting, execute_wrapper hooks and query logging still see it."""
    query = Prepared(page)
    with CaptureQueriesContext(connection) as captured:
        query.run((3, 0, False), service_id=built_service.pk)
        query.run((3, 0, False), service_id=built_service.pk)
    assert len(captured.captured_queries) == 2
    assert 'FROM "jobs_job"' in captured.captured_queries[0]["sql"]


def test_deferred_and_encrypted_fields_stay_deferred(jobs, built_service):
    [job] = Prepared(page).run((1, 0, False), service_id=built_service.pk)
    assert "data" in job.env_snapshot.get_deferred_fields()
    assert "repo_credential" in job.build.get_deferred_fields()


def test_a_lookup_that_changes_the_value_is_refused(built_service):
    query = Prepared(lambda shape, text: Job.objects.filter(start_command__icontains=text))
    with pytest.raises(ValueError, match="did not reach the SQL unchanged"):
        query.run(text="job")


def test_only_plain_values_can_be_bound(built_service):
    query = Prepared(lambda shape, when: Job.objects.filter(created_at__gte=when))
    with pytest.raises(TypeError):
        query.run(when=1.5)


def test_switched_off_it_is_the_ordinary_queryset(jobs, built_service, monkeypatch):
    monkeypatch.setattr(prepared, "enabled", False)
    query = Prepared(page)
    got = query.run((5, 0, False), service_id=built_service.pk)
    assert [j.pk for j in got] == [j.pk for j in page((5, 0, False), built_service.pk)]
    assert not query._compiled


def test_rows_of_a_values_list_are_the_querysets_tuples(jobs, built_service, monkeypatch):
    """``Prepared.rows``: a ``values_list()`` queryset's rows as tuples, JSON decoded as the
    queryset decodes it, on the compiled path and on the ordinary one."""
    rows = Prepared(
        lambda shape, *, service_id: (
            Job.objects.filter(service_id=service_id)
            .order_by("-created_at", "-id")
            .values_list("id", "status", "reason", "created_at")[:10]
        )
    )
    expected = list(
        Job.objects.filter(service_id=built_service.pk)
        .order_by("-created_at", "-id")
        .values_list("id", "status", "reason", "created_at")[:10]
    )
    assert any(row[2] for row in expected)  # a decoded reason among them
    for _ in range(7):  # past psycopg's prepare threshold
        assert rows.rows(service_id=built_service.pk) == expected
    assert rows.rows(service_id="srv-nonesuch") == []
    monkeypatch.setattr(prepared, "enabled", False)
    assert rows.rows(service_id=built_service.pk) == expected

"""GET /v1/services/{id}/jobs: order, limit, cursor, status and time filters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import EnvSnapshot, Job, JobStatus
from tests.helpers import assert_error

T0 = timezone.now().replace(microsecond=0) - timedelta(days=10)


@pytest.fixture
def add_job(built_service):
    build = built_service.builds.get()
    snapshot = EnvSnapshot.capture(built_service)

    def add(minutes: int, status=JobStatus.SUCCEEDED, **fields):
        created = T0 + timedelta(minutes=minutes)
        if status != JobStatus.PENDING:
            fields.setdefault("started_at", created + timedelta(seconds=30))
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED):
            fields.setdefault("finished_at", created + timedelta(seconds=90))
        return Job.objects.create(
            workspace=built_service.workspace,
            service=built_service,
            start_command=f"job {minutes}",
            plan_id="plan-srv-006",
            build=build,
            env_snapshot=snapshot,
            status=status,
            created_at=created,
            **fields,
        )

    return add


def ids(response):
    assert response.status_code == 200, response.content
    return [item["job"]["id"] for item in response.json()]


def url(service):
    return f"/v1/services/{service.id}/jobs"


def test_it_lists_newest_first_with_cursors(viewer_api, built_service, add_job):
    jobs = [add_job(m) for m in range(3)]
    r = viewer_api.get(url(built_service))
    body = r.json()
    assert [i["job"]["id"] for i in body] == [j.id for j in reversed(jobs)]
    assert all(isinstance(i["cursor"], str) and i["cursor"] for i in body)
    assert r["Ratelimit-Limit"] == "400"
    assert "startedAt" in body[0]["job"]


def test_pending_jobs_have_no_null_times(viewer_api, built_service, add_job):
    add_job(0, JobStatus.PENDING)
    job = viewer_api.get(url(built_service)).json()[0]["job"]
    assert "startedAt" not in job
    assert "finishedAt" not in job


def test_it_defaults_to_20_and_honours_limit(viewer_api, built_service, add_job):
    for m in range(25):
        add_job(m)
    assert len(ids(viewer_api.get(url(built_service)))) == 20
    assert len(ids(viewer_api.get(url(built_service), {"limit": 5}))) == 5
    assert len(ids(viewer_api.get(url(built_service), {"limit": 100}))) == 25


def test_it_pages_by_cursor(viewer_api, built_service, add_job):
    jobs = [add_job(m) for m in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = viewer_api.get(url(built_service), params).json()
        seen += [i["job"]["id"] for i in page]
        if len(page) < 3:
            break
        cursor = page[-1]["cursor"]
    assert seen == [j.id for j in reversed(jobs)]


def test_paging_while_jobs_are_inserted_returns_each_old_job_once(
    viewer_api, built_service, add_job
):
    old = [add_job(m) for m in range(10)]
    seen, cursor, minute = [], None, 100
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = viewer_api.get(url(built_service), params).json()
        seen += [i["job"]["id"] for i in page]
        add_job(minute)  # newer than everything: must not disturb the walk
        add_job(minute + 1)
        minute += 2
        if len(page) < 3:
            break
        cursor = page[-1]["cursor"]
    assert seen == [j.id for j in reversed(old)]


def test_jobs_with_equal_created_at_are_each_returned_once(viewer_api, built_service, add_job):
    jobs = [add_job(0) for _ in range(5)]  # same created_at: ties broken by id
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = viewer_api.get(url(built_service), params).json()
        seen += [i["job"]["id"] for i in page]
        if len(page) < 2:
            break
        cursor = page[-1]["cursor"]
    assert sorted(seen) == sorted(j.id for j in jobs)
    assert len(seen) == 5


def test_it_filters_by_one_status(viewer_api, built_service, add_job):
    failed = add_job(0, JobStatus.FAILED)
    add_job(1, JobStatus.SUCCEEDED)
    assert ids(viewer_api.get(url(built_service), {"status": "failed"})) == [failed.id]


def test_it_filters_by_several_statuses(viewer_api, built_service, add_job):
    a = add_job(0, JobStatus.PENDING)
    add_job(1, JobStatus.SUCCEEDED)
    c = add_job(2, JobStatus.RUNNING)
    got = ids(viewer_api.get(url(built_service), {"status": "pending,running"}))
    assert got == [c.id, a.id]


@pytest.mark.parametrize(
    ("name", "offset", "expected"),
    [
        ("createdBefore", 2, [1, 0]),
        ("createdAfter", 1, [2, 1]),
        ("startedBefore", 2, [1, 0]),
        ("startedAfter", 1, [2, 1]),
        ("finishedBefore", 2, [1, 0]),
        ("finishedAfter", 1, [2, 1]),
    ],
)
def test_each_time_filter(viewer_api, built_service, add_job, name, offset, expected):
    jobs = [add_job(m * 10) for m in range(3)]
    # The job's own timestamp for that field, at job `offset`: before is exclusive, after
    # inclusive.
    field = {"created": "created_at", "started": "started_at", "finished": "finished_at"}
    attr = field[name.removesuffix("Before").removesuffix("After")]
    bound = getattr(jobs[offset], attr)
    got = ids(viewer_api.get(url(built_service), {name: bound.isoformat()}))
    assert got == [jobs[i].id for i in expected]


def test_filters_combine(viewer_api, built_service, add_job):
    add_job(0, JobStatus.FAILED)
    b = add_job(10, JobStatus.FAILED)
    add_job(20, JobStatus.SUCCEEDED)
    add_job(30, JobStatus.FAILED)
    params = {
        "status": "failed",
        "createdAfter": (T0 + timedelta(minutes=5)).isoformat(),
        "createdBefore": (T0 + timedelta(minutes=25)).isoformat(),
        "finishedAfter": (T0 + timedelta(minutes=5)).isoformat(),
        "limit": 10,
    }
    assert ids(viewer_api.get(url(built_service), params)) == [b.id]


def test_naive_times_are_utc(viewer_api, built_service, add_job):
    add_job(0)
    b = add_job(10)
    naive = (T0 + timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert ids(viewer_api.get(url(built_service), {"createdAfter": naive})) == [b.id]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "done"}, "status"),
        ({"status": "failed,"}, "status"),
        ({"createdBefore": "yesterday"}, "createdBefore"),
        ({"startedAfter": "2025-13-01T00:00:00Z"}, "startedAfter"),
        ({"finishedBefore": "2025-01-01T25:00:00Z"}, "finishedBefore"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "Zm9vfGJhcg"}, "cursor"),
        ({"cursor": "x" * 201}, "cursor"),
    ],
)
def test_bad_query_values_are_400s_naming_the_field(viewer_api, built_service, params, field):
    assert_error(viewer_api.get(url(built_service), params), 400, field=field)


def test_list_is_404_for_a_missing_service(viewer_api):
    assert_error(viewer_api.get("/v1/services/srv-00000000000000000000/jobs"), 404)


def test_a_page_is_cheap_to_plan(viewer_api, built_service, add_job):
    """The page's query joins four small tables, not seven: PostgreSQL took about 10 ms to plan a
    join of the job with its plan, workspace, build, snapshot and two users, for 0.3 ms of work
    (issue 20's breakdown, bench/bench_api_list.py). The plan comes from one lookup of its own,
    the workspace from the request; the answer is the same."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for minutes in range(3):
        add_job(minutes, peak_memory_bytes=500 * 1024 * 1024)  # a usage hint reads the plan
    with CaptureQueriesContext(connection) as queries:
        body = viewer_api.get(url(built_service)).json()
    [page] = [q["sql"] for q in queries if 'FROM "jobs_job"' in q["sql"]]
    assert page.count(" JOIN ") <= 4
    assert len(queries) <= 8  # key, rate limit (cache), service, page, plans, usage hints' plans
    assert all("usageHint" in item["job"] for item in body)
    assert all("logsExpireAt" in item["job"] for item in body)

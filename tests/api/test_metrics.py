"""What a job used, through the API: the job's ``peakMemoryMB``, ``cpuSeconds`` and
``usageHint`` fields, and Render's ``GET /v1/metrics/memory`` and ``/v1/metrics/cpu`` (read with
Render's own client, which must parse them), scoped to the key's workspace. The samples are
written here as the runner writes them; tests/jobs/test_usage.py reads real containers."""

from datetime import UTC, datetime, timedelta

import pytest
from render.public_api.api.metrics import get_cpu, get_memory
from render.public_api.models import GetCpuAggregationMethod, TimeSeries

from jobs.models import JobStatus, JobUsage
from jobs.usage import MiB
from services.models import Plan
from tests.helpers import assert_error

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


# Every 2 s for 10 s: memory climbs to 400 MiB at 6 s, CPU busy 0.5 core for the first 6 s.
POINTS = [
    [at(2), 100 * MiB, 1.0],
    [at(4), 200 * MiB, 2.0],
    [at(6), 400 * MiB, 3.0],
    [at(8), 300 * MiB, 3.2],
    [at(10), 300 * MiB, 3.4],
]


@pytest.fixture
def used_job(make_job):
    job = make_job(
        started_at=T0,
        finished_at=T0 + timedelta(seconds=10),
        peak_memory_bytes=400 * MiB + 12345,
        cpu_seconds=3.4,
    )
    JobUsage.objects.create(job=job, step_seconds=2, points=POINTS)
    return job


def job_url(job):
    return f"/v1/services/{job.service_id}/jobs/{job.id}"


def test_a_jobs_usage_fields_are_absent_until_read_then_in_mb_and_seconds(
    owner_api, make_job, used_job
):
    unread = owner_api.get(job_url(make_job())).json()
    assert not {"peakMemoryMB", "cpuSeconds", "usageHint"} & set(unread)
    body = owner_api.get(job_url(used_job)).json()
    assert body["peakMemoryMB"] == 400.0
    assert body["cpuSeconds"] == 3.4
    assert "usageHint" not in body  # 400 of 512 MB is below 90%
    [listed] = [
        item["job"]
        for item in owner_api.get(f"/v1/services/{used_job.service_id}/jobs").json()
        if item["job"]["id"] == used_job.id
    ]
    assert listed["peakMemoryMB"] == 400.0


def test_a_job_peaking_above_90_percent_gets_a_hint_naming_the_next_plan(owner_api, make_job):
    job = make_job(peak_memory_bytes=498 * MiB, cpu_seconds=1.0)
    assert owner_api.get(job_url(job)).json()["usageHint"] == (
        "peaked at 498 of 512 MB: try Standard, 2 GB"
    )
    at_90 = make_job(peak_memory_bytes=int(0.9 * 512 * MiB))
    assert "usageHint" not in owner_api.get(job_url(at_90)).json()


def test_an_out_of_memory_job_gets_the_hint_even_before_any_reading(owner_api, make_job):
    job = make_job(status=JobStatus.FAILED, reason={"oomKilled": {"memoryLimit": "512Mi"}})
    assert owner_api.get(job_url(job)).json()["usageHint"] == (
        "ran out of memory at 512 MB: try Standard, 2 GB"
    )


def test_the_hint_names_a_plan_of_the_services_kind_and_says_when_none_is_bigger(
    owner_api, make_service, make_build, make_job
):
    cron = make_service(name="nightly", type="cron_job")
    make_build(cron)
    job = make_job(cron, plan=Plan.objects.get(pk="plan-crn-007"), peak_memory_bytes=4000 * MiB)
    assert owner_api.get(job_url(job)).json()["usageHint"] == (
        "peaked at 4000 of 4096 MB: try Pro Plus, 8 GB"
    )
    largest = make_job(
        cron,
        plan=Plan.objects.get(pk="plan-crn-008"),
        status=JobStatus.FAILED,
        reason={"oomKilled": {}},
        exit_code=137,
    )
    assert owner_api.get(job_url(largest)).json()["usageHint"] == (
        "ran out of memory at 8 GB, and no plan with more memory exists for this service"
    )


# --- Render's metrics endpoints --------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_renders_client_reads_a_jobs_memory_and_cpu(render, used_job):
    memory = get_memory.sync(client=render, resource=used_job.id, resolution_seconds=4)
    assert isinstance(memory, list)
    [series] = memory
    assert isinstance(series, TimeSeries)
    assert [(label.field, label.value) for label in series.labels] == [("resource", used_job.id)]
    assert series.unit == "bytes"
    # Buckets of 4 s from the job's start: [0, 4) holds the 2 s point, [4, 8) the 4 and 6 s
    # points (the larger kept), [8, 12) the 8 and 10 s ones.
    assert [(v.timestamp, v.value) for v in series.values] == [
        (T0, 100 * MiB),
        (T0 + timedelta(seconds=4), 400 * MiB),
        (T0 + timedelta(seconds=8), 300 * MiB),
    ]

    [cpu] = get_cpu.sync(client=render, resource=used_job.id, resolution_seconds=4)
    assert cpu.unit == "cpu"
    # Cores between points: 0.5 (2→4 s), 0.5 (4→6), 0.1 (6→8), 0.1 (8→10).
    assert [(v.timestamp, v.value) for v in cpu.values] == [
        (T0 + timedelta(seconds=4), 0.5),
        (T0 + timedelta(seconds=8), 0.1),
    ]
    [cpu_max] = get_cpu.sync(
        client=render,
        resource=used_job.id,
        resolution_seconds=8,
        aggregation_method=GetCpuAggregationMethod.MAX,
    )
    assert [v.value for v in cpu_max.values] == [0.5, 0.1]

    # A window narrower than the run: only the points inside it.
    window = get_memory.sync(
        client=render,
        resource=used_job.id,
        start_time=T0 + timedelta(seconds=5),
        end_time=T0 + timedelta(seconds=9),
        resolution_seconds=30,
    )
    assert [v.value for v in window[0].values] == [400 * MiB]


def test_several_jobs_one_series_each_in_the_order_asked(owner_api, make_job, used_job):
    unread = make_job()
    r = owner_api.get(
        f"/v1/metrics/memory?resource={unread.id}&resource={used_job.id}&resolutionSeconds=60"
    )
    assert r.status_code == 200, r.content
    assert [s["labels"][0]["value"] for s in r.json()] == [unread.id, used_job.id]
    assert r.json()[0]["values"] == []
    assert [v["value"] for v in r.json()[1]["values"]] == [400 * MiB]
    commas = owner_api.get(f"/v1/metrics/cpu?resource={unread.id},{used_job.id}")
    assert len(commas.json()) == 2


def test_another_workspaces_job_is_a_404_like_a_missing_one(
    owner_api, outsider_api, used_job, make_service, other_workspace, make_build, make_job
):
    for metric in ("memory", "cpu"):
        foreign = outsider_api.get(f"/v1/metrics/{metric}?resource={used_job.id}")
        body = assert_error(foreign, 404, id="not_found")
        missing = outsider_api.get(f"/v1/metrics/{metric}?resource=job-{'0' * 20}")
        assert missing.json() == body
    # One foreign job among one's own answers nothing of either.
    theirs = make_service(other_workspace, name="theirs")
    make_build(theirs)
    their_job = make_job(theirs, peak_memory_bytes=MiB)
    mixed = owner_api.get(f"/v1/metrics/memory?resource={used_job.id}&resource={their_job.id}")
    assert_error(mixed, 404, id="not_found")


def test_a_viewer_reads_metrics(viewer_api, used_job):
    r = viewer_api.get(f"/v1/metrics/memory?resource={used_job.id}")
    assert r.status_code == 200, r.content
    assert r.json()[0]["labels"] == [{"field": "resource", "value": used_job.id}]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "resource"),
        ("resource=", "resource"),
        ("resource={job}&resolutionSeconds=0", "resolutionSeconds"),
        ("resource={job}&resolutionSeconds=abc", "resolutionSeconds"),
        ("resource={job}&startTime=2026-11-20T13:00:00Z&endTime=2026-11-20T12:00:00Z", "startTime"),
        ("resource={job}&startTime=yesterday", "startTime"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(owner_api, used_job, query, field):
    r = owner_api.get(f"/v1/metrics/memory?{query.format(job=used_job.id)}")
    assert_error(r, 400, field=field)


def test_a_bad_aggregation_method_is_a_400(owner_api, used_job):
    r = owner_api.get(f"/v1/metrics/cpu?resource={used_job.id}&aggregationMethod=SUM")
    assert_error(r, 400, field="aggregationMethod")

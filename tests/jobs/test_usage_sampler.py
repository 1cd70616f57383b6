"""The usage sampler's own rules, without a container: the series stays bounded and keeps its
spikes, a cgroup v2 host is read as well as this v1 one (a fake /proc and cgroup folder, laid
out as the kernel does), a running job's usage is written while it runs but never over an ended
job's, and a job killed for memory records that it reached its limit."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs import usage
from jobs.models import Job, JobStatus, JobUsage
from jobs.usage import (
    MAX_POINTS,
    MiB,
    Reading,
    Series,
    UsageSampler,
    Watch,
    _read_at,
    cpu_values,
    find_cgroup,
)


def test_the_series_merges_pairs_when_full_keeping_the_larger_memory():
    series = Series(step=2.0)
    for i in range(MAX_POINTS):
        series.add(i * 2.0, 10 * MiB, i * 0.1)
    assert len(series.points) == MAX_POINTS
    series.add(MAX_POINTS * 2.0, 999 * MiB, 100.0)  # one too many: pairs merge
    assert len(series.points) == (MAX_POINTS + 1) // 2 + (MAX_POINTS + 1) % 2
    assert series.step == 4.0
    assert series.points[-1][1] == 999 * MiB  # the spike survives the merge
    assert series.points[-1][2] == 100.0  # CPU so far: the later point's
    for i in range(10 * MAX_POINTS):  # a long job: never more than MAX_POINTS
        series.add(MAX_POINTS * 2.0 + (i + 1) * 4.0, MiB, 100.0 + i)
    assert len(series.points) <= MAX_POINTS
    assert max(point[1] for point in series.points) == 999 * MiB


def test_a_reading_within_the_step_folds_into_the_last_point():
    series = Series(step=2.0)
    series.add(0.0, 5 * MiB, 0.1)
    series.add(0.3, 7 * MiB, 0.2)  # the first pass right after the start, then the regular one
    series.add(2.0, 6 * MiB, 0.3)
    assert series.points == [[0.3, 7 * MiB, 0.2], [2.0, 6 * MiB, 0.3]]


def cgroup_v2_host(tmp_path: Path, root: str = "/") -> tuple[Path, Path]:
    """A fake /proc naming a cgroup2 mount, and a container's cgroup folder in it."""
    proc, mount = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "4242").mkdir()
    (proc / "self" / "mountinfo").write_text(
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        f"30 22 0:26 {root} {mount} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    )
    folder = mount / "system.slice" / "docker-abc.scope"
    folder.mkdir(parents=True)
    (folder / "memory.current").write_text("104857600\n")
    (folder / "memory.peak").write_text("209715200\n")
    (folder / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    return proc, folder


def test_a_cgroup_v2_host_is_read_from_the_containers_process(tmp_path, monkeypatch):
    proc, folder = cgroup_v2_host(tmp_path)
    (proc / "4242" / "cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    monkeypatch.setattr(usage, "PROC", proc)
    reader = find_cgroup(4242, "abc")
    assert reader is not None
    assert reader.version == 2
    assert reader.memory == folder / "memory.current"
    assert reader.read() == Reading(100 * MiB, 200 * MiB, 1.5)
    # Without a visible process, the systemd driver's usual place.
    assert find_cgroup(None, "abc") == reader
    assert find_cgroup(None, "other") is None


def test_a_cgroup_namespace_root_is_taken_off_the_process_path(tmp_path, monkeypatch):
    """Inside a cgroup namespace the mount's root is the namespace's, and /proc/<pid>/cgroup
    names paths under it."""
    proc, folder = cgroup_v2_host(tmp_path, root="/system.slice")
    (proc / "4242" / "cgroup").write_text("0::/system.slice/system.slice/docker-abc.scope\n")
    monkeypatch.setattr(usage, "PROC", proc)
    reader = find_cgroup(4242, "abc")
    assert reader is not None
    assert reader.memory == folder / "memory.current"


class FakeReader:
    def __init__(self, *readings: Reading):
        self.readings = list(readings)

    def read(self) -> Reading:
        if not self.readings:
            raise OSError("gone")
        return self.readings.pop(0)


def sampler_watching(job: Job, reader: FakeReader) -> UsageSampler:
    sampler = UsageSampler(client_factory=lambda: None, every=2.0)  # type: ignore[arg-type,return-value]
    sampler.watches[job.pk] = Watch(job.pk, "c", reader=reader)  # type: ignore[arg-type]
    return sampler


@pytest.mark.django_db
def test_a_running_jobs_usage_is_written_while_it_runs(make_job):
    job = make_job(status=JobStatus.RUNNING)
    sampler = sampler_watching(job, FakeReader(Reading(50 * MiB, 80 * MiB, 0.25)))
    sampler.sample()
    job.refresh_from_db()
    assert job.peak_memory_bytes == 80 * MiB
    assert job.cpu_seconds == 0.25
    assert len(JobUsage.objects.get(job=job).points) == 1


@pytest.mark.django_db
def test_a_point_is_dated_when_it_was_read_not_when_it_was_stored(make_job):
    """A pass held up between reading and storing (a flush, a loaded machine) would squeeze a
    whole interval's CPU into a shorter one: 1 s used in 2 s would read as more cores than the
    plan's quota. CI saw 0.6+ cores on a 0.5 CPU plan before points carried their read time."""
    job = make_job(status=JobStatus.RUNNING)
    sampler = sampler_watching(
        job, FakeReader(Reading(MiB, None, 1.0, at=1000.0), Reading(MiB, None, 2.0, at=1002.0))
    )
    sampler.sample()
    time.sleep(0.05)  # stored later than read
    sampler.sample()
    series = sampler.watches[job.pk].series
    assert series is not None
    [first, second] = series.points
    assert (first[0], second[0]) == (1000.0, 1002.0)
    assert cpu_values([first, second], 1000.0, 1003.0, 2) == [(1002.0, 0.5)]


def test_the_engines_stats_are_dated_by_the_engine():
    assert _read_at({"read": "2026-12-03T09:33:04.250000000Z"}) == pytest.approx(
        datetime(2026, 12, 3, 9, 33, 4, 250000, tzinfo=UTC).timestamp()
    )
    now = time.time()
    assert _read_at({"read": "0001-01-01T00:00:00Z"}) >= now  # a stopped container's: now
    assert _read_at({}) >= now


@pytest.mark.django_db
def test_a_late_write_never_changes_an_ended_jobs_usage(make_job):
    job = make_job(status=JobStatus.SUCCEEDED, peak_memory_bytes=300 * MiB, cpu_seconds=2.0)
    sampler = sampler_watching(job, FakeReader(Reading(MiB, MiB, 0.1)))
    sampler.sample()
    job.refresh_from_db()
    assert job.peak_memory_bytes == 300 * MiB
    assert job.cpu_seconds == 2.0


@pytest.mark.django_db
def test_a_job_killed_for_memory_reached_its_limit(make_job):
    job = make_job(status=JobStatus.RUNNING)
    sampler = sampler_watching(job, FakeReader(Reading(200 * MiB, 300 * MiB, 0.5)))
    sampler.sample()  # the last reading before the kill saw 300 MB
    used = sampler.finish(job.pk, oom_killed=True, memory_limit_mb=512)
    assert used == {"peak_memory_bytes": 512 * MiB, "cpu_seconds": 0.5}
    assert not sampler.watching(job.pk)
    # Never read at all (a very short job): still known to have reached the limit.
    assert sampler.finish("job-unknown", oom_killed=True, memory_limit_mb=512) == {
        "peak_memory_bytes": 512 * MiB
    }
    assert sampler.finish("job-unknown", oom_killed=False, memory_limit_mb=512) == {}


def test_sampling_off_watches_nothing():
    sampler = UsageSampler(client_factory=lambda: None, every=0)  # type: ignore[arg-type,return-value]
    sampler.watch("job-x", "c")
    assert not sampler.watching("job-x")

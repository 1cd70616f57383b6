"""How the runner bounds a job's disk writes on each kind of engine (JOB_DISK_MODE=auto), with a
fake engine: the real one here (overlay2 on extfs) only shows the read-only case, which
tests/jobs/test_job_limits.py runs for real."""

import pytest
from docker.errors import APIError

from jobs import runner

REFUSAL = "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"


class FakeEngine:
    """``containers.create`` and ``info`` of a Docker client, on a given storage driver."""

    count = 0

    def __init__(self, driver: str, backing: str = "", refuses_size: bool = False):
        FakeEngine.count += 1
        self.api = type("Api", (), {"base_url": f"http+docker://fake-{FakeEngine.count}"})()
        self.containers = self
        self.driver, self.backing, self.refuses_size = driver, backing, refuses_size
        self.created: list[dict] = []
        self.info_calls = 0

    def info(self) -> dict:
        self.info_calls += 1
        status = [["Backing Filesystem", self.backing]] if self.backing else []
        return {"Driver": self.driver, "DriverStatus": status}

    def create(self, **config) -> str:
        self.created.append(config)
        if self.refuses_size and "storage_opt" in config:
            raise APIError("500 Server Error: Internal Server Error", explanation=REFUSAL)
        return "a container"


@pytest.fixture
def job(make_job, tiny_plan):
    tiny_plan.refresh_from_db()  # its fields as the database gives them (cpu a Decimal)
    return make_job(plan=tiny_plan)


@pytest.fixture(autouse=True)
def _forget_engines(monkeypatch):
    monkeypatch.setattr(runner, "_size_support", {})
    # The fake takes the SDK's high-level keyword arguments, as container_config makes them.
    monkeypatch.setattr(
        runner, "_create", lambda client, config: client.containers.create(**config)
    )


def test_overlay_on_extfs_gets_a_read_only_root_and_tmpfs_scratch(job, settings):
    engine = FakeEngine("overlay2", "extfs")
    runner._create_or_get(engine, job)
    runner._create_or_get(engine, job)

    assert engine.info_calls == 1  # asked once, remembered
    config = engine.created[-1]
    assert "storage_opt" not in config
    assert config["read_only"] is True
    scratch = "rw,exec,nosuid,nodev,size=4m,mode=1777"  # half the tiny plan's 8 MB
    assert config["tmpfs"] == {"/tmp": scratch, "/var/tmp": scratch}


def test_an_engine_that_can_bound_the_writable_layer_does(job, settings):
    settings.JOB_DISK_MB = 2048
    for driver, backing in (("btrfs", ""), ("zfs", ""), ("overlay2", "xfs")):
        engine = FakeEngine(driver, backing)
        runner._create_or_get(engine, job)
        [config] = engine.created
        assert config["storage_opt"] == {"size": "2048M"}
        assert "read_only" not in config
        assert "tmpfs" not in config


def test_overlay_on_xfs_without_pquota_is_tried_once_then_read_only(job):
    engine = FakeEngine("overlay2", "xfs", refuses_size=True)
    assert runner._create_or_get(engine, job) == "a container"
    first, retry = engine.created
    assert first["storage_opt"] == {"size": "10240M"}
    assert retry["read_only"] is True
    assert "storage_opt" not in retry

    runner._create_or_get(engine, job)  # the next job goes read-only straight away
    assert len(engine.created) == 3
    assert engine.created[-1]["read_only"] is True


def test_a_forced_mode_is_kept(job, settings):
    engine = FakeEngine("overlay2", "extfs", refuses_size=True)
    settings.JOB_DISK_MODE = "off"
    runner._create_or_get(engine, job)
    assert not {"storage_opt", "read_only", "tmpfs"} & set(engine.created[-1])
    settings.JOB_DISK_MODE = "size"
    with pytest.raises(APIError):  # a start error, not a silent fallback
        runner._create_or_get(engine, job)
    assert engine.info_calls == 0


def test_job_user(job, settings):
    engine = FakeEngine("overlay2", "extfs")
    runner._create_or_get(engine, job)
    assert "user" not in engine.created[-1]  # the image's USER
    settings.JOB_USER = "65534:65534"
    runner._create_or_get(engine, job)
    assert engine.created[-1]["user"] == "65534:65534"

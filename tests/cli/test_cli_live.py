"""``oneoff`` against a live Oneoff: gunicorn, PostgreSQL, Redis, the Celery workers, the Docker
Engine; the client runs as ``.venv/bin/oneoff`` from a folder outside the checkout."""

import json
import os
import pty
import select
import signal
import subprocess
import threading
import time

import pytest

from jobs.models import Job, JobStatus, LogStream
from services.models import ApiKey, Role
from tests.cli.conftest import ONEOFF, cli_env
from tests.helpers import make_member, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def stored(job_id: str) -> tuple[bytes, bytes]:
    """The job's stored log as the client must print it: (stdout, stderr), each line + \\n."""
    out, err = [], []
    for stream, text in (
        Job.objects.get(pk=job_id).log_lines.order_by("seq").values_list("stream", "text")
    ):
        (err if stream == LogStream.STDERR else out).append(text.encode() + b"\n")
    return b"".join(out), b"".join(err)


def only_job(service) -> Job:
    jobs = list(Job.objects.filter(service=service))
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_run_wait_exits_with_the_jobs_exit_code(oneoff, job_service, tiny_plan):
    ok = oneoff("jobs", "run", job_service.id, "--wait", "--", "true")
    assert ok.returncode == 0, ok.stderr
    three = oneoff("jobs", "run", job_service.name, "--wait", "--", "echo bye; exit 3")
    assert three.returncode == 3, three.stderr
    assert b"exit code 3" in three.stderr  # the client's closing note, on stderr
    oom = oneoff(
        "jobs",
        "run",
        job_service.id,
        "--plan",
        tiny_plan.id,
        "--wait",
        "--json",
        "--",
        "echo start; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
    )
    assert oom.returncode == 137, oom.stderr
    job = json.loads(oom.stdout)
    assert job["status"] == "failed"
    assert job["reason"] == {"oomKilled": {"memoryLimit": "8Mi"}}
    assert Job.objects.get(pk=job["id"]).reason == job["reason"]
    statuses = sorted(Job.objects.filter(service=job_service).values_list("status", flat=True))
    assert statuses == ["failed", "failed", "succeeded"]


def test_tail_prints_the_stored_log_byte_for_byte(oneoff, job_service):
    # 10,000 lines, odd ones on stdout and even ones on stderr, with UTF-8, tabs and spaces.
    script = (
        "i=1; while [ $i -le 10000 ]; do "
        "if [ $((i % 2)) = 1 ]; then printf 'out %d \\303\\251\\t x  \\n' $i; "
        "else printf 'err %d\\n' $i >&2; fi; i=$((i + 1)); done"
    )
    result = oneoff("jobs", "run", job_service.name, "--tail", "-q", "--", script, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    job = only_job(job_service)
    assert job.log_lines.count() == 10_000
    out, err = stored(job.id)
    assert result.stdout == out
    assert result.stderr == err
    assert result.stdout.startswith("out 1 é\t x  \nout 3 ".encode())


def test_tail_survives_the_server_restarting_mid_job(oneoff_server, api_key, home, job_service):
    script = (
        'i=1; while [ $i -le 3000 ]; do echo "out $i"; echo "err $i" >&2; '
        "[ $((i % 250)) = 0 ] && sleep 1; i=$((i + 1)); done"
    )
    out_path, err_path = home / "out", home / "err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(
            [ONEOFF, "jobs", "run", job_service.id, "--tail", "--", script],
            cwd=home,
            env=cli_env(home, oneoff_server.url, api_key),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        try:
            wait_for(lambda: out_path.stat().st_size > 2000, 60, 0.05, "the first lines")
            oneoff_server.stop()
            job = only_job(job_service)
            assert job.status == JobStatus.RUNNING
            time.sleep(3)  # the job goes on printing meanwhile
            assert process.poll() is None
            oneoff_server.start()
            assert process.wait(120) == 0
        finally:
            if process.poll() is None:
                process.kill()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.log_lines.count() == 6000
    want_out, want_err = stored(job.id)
    assert out_path.read_bytes() == want_out
    # The client's own notes (the outage it rode out) are on stderr too, as "oneoff: …" lines.
    lines = err_path.read_bytes().splitlines(keepends=True)
    notes = [line for line in lines if line.startswith(b"oneoff: ")]
    assert any(b"cannot reach" in note and b"retrying" in note for note in notes), notes
    assert b"".join(line for line in lines if line not in notes) == want_err


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, seen
        if select.select([fd], [], [], left)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


class Terminal:
    """``oneoff ARGS…`` with a pty as its terminal (stdin, stdout, stderr), read all along by a
    thread (so the client never blocks on a full pty)."""

    def __init__(self, server, key, home, *args):
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [ONEOFF, *args],
            cwd=home,
            env=cli_env(home, server.url, key),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.output = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.output += data

    def wait_for(self, needle: bytes, timeout: float = 10) -> bytes:
        return wait_for(lambda: needle in self.output and self.output, timeout, 0.05, needle)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.reader.join(5)
        os.close(self.master)


def test_ctrl_c_on_a_terminal_asks_and_y_cancels_the_job(oneoff_server, api_key, home, job_service):
    terminal = Terminal(
        oneoff_server, api_key, home, "jobs", "run", job_service.id, "--wait", "--", "sleep 60"
    )
    try:
        job = wait_for(lambda: Job.objects.filter(service=job_service).first(), 30)
        wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, 30)
        assert f"{job.id} pending (".encode() in terminal.output  # the spinner, on a terminal
        terminal.process.send_signal(signal.SIGINT)
        terminal.wait_for(f"Cancel job {job.id}? [y/N]".encode())
        os.write(terminal.master, b"y\n")
        assert terminal.process.wait(60) == 130
    finally:
        terminal.close()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.reason["canceledBy"]


def test_ctrl_c_answered_no_leaves_the_job_running_and_jobs_cancel_stops_it(
    oneoff, oneoff_server, api_key, home, job_service
):
    terminal = Terminal(
        oneoff_server, api_key, home, "jobs", "run", job_service.id, "--wait", "--", "sleep 60"
    )
    try:
        job = wait_for(lambda: Job.objects.filter(service=job_service).first(), 30)
        wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, 30)
        terminal.process.send_signal(signal.SIGINT)
        terminal.wait_for(b"[y/N]")
        os.write(terminal.master, b"n\n")
        assert terminal.process.wait(30) == 130
        said = terminal.wait_for(b"keeps running", 5)
        assert b"oneoff jobs logs -f" in said
    finally:
        terminal.close()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING

    result = oneoff("jobs", "cancel", job.id)
    assert result.returncode == 0, result.stderr
    assert job.id.encode() in result.stdout
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.CANCELED, 30)


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGINT, 130, b"no terminal to ask"),
        (signal.SIGTERM, 143, b"terminated: canceling"),
    ],
)
def test_ctrl_c_or_sigterm_without_a_terminal_cancels_the_job(
    oneoff_server, api_key, home, job_service, signum, code, said
):
    process = subprocess.Popen(
        [ONEOFF, "jobs", "run", job_service.id, "--tail", "--", "echo up; sleep 60"],
        cwd=home,
        env=cli_env(home, oneoff_server.url, api_key),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        job = wait_for(lambda: Job.objects.filter(service=job_service).first(), 30)
        wait_for(lambda: job.log_lines.exists(), 30)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, err
    assert said in err
    assert out == b"up\n"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED


def test_json_output_parses_and_tables_align(oneoff, job_service, make_service):
    make_service(name="other")
    first = oneoff("jobs", "run", job_service.name, "--wait", "--", "echo one")
    assert first.returncode == 0, first.stderr
    created = oneoff("jobs", "run", job_service.id, "--json", "--", "echo two")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["startCommand"] == "echo two"
    assert job["status"] in ("pending", "running", "succeeded")

    services = json.loads(oneoff("services", "list", "--json").stdout)
    assert {s["name"] for s in services} == {"runner", "other"}
    listed = json.loads(oneoff("jobs", "list", "runner", "--json").stdout)
    assert listed[0]["id"] == job["id"]  # newest first
    assert len(listed) == 2
    one = json.loads(oneoff("jobs", "list", "runner", "--limit", "1", "--json").stdout)
    assert [j["id"] for j in one] == [job["id"]]
    got = json.loads(oneoff("jobs", "get", job["id"], "--json").stdout)
    assert got["id"] == job["id"]
    assert got["serviceId"] == job_service.id

    # Human tables: every column starts at the same offset on every row; no colour in a pipe.
    table = oneoff("services", "list").stdout.decode().splitlines()
    assert table[0].split() == ["ID", "NAME", "TYPE", "PLAN", "SUSPENDED"]
    assert len({line.index("web_service") for line in table[1:]}) == 1
    assert "\x1b[" not in oneoff("jobs", "list", "runner").stdout.decode()
    rows = oneoff("jobs", "list", "runner", "--status", "succeeded").stdout.decode().splitlines()
    assert rows[0].split()[:3] == ["ID", "STATUS", "EXIT"]
    assert len(rows) >= 2
    assert all(" succeeded " in row for row in rows[1:])


def test_jobs_logs_prints_and_follows(oneoff, job_service):
    result = oneoff("jobs", "run", job_service.id, "--json", "--", "echo a; echo b >&2; echo c")
    job_id = json.loads(result.stdout)["id"]
    followed = oneoff("jobs", "logs", job_id, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == b"a\nc\n"
    assert followed.stderr == b"b\n"
    again = oneoff("jobs", "logs", job_id, "--service", job_service.name)
    assert (again.stdout, again.stderr) == (b"a\nc\n", b"b\n")
    assert oneoff("jobs", "logs", job_id, "--since", "1s").stdout in (b"", b"a\nc\n")
    raw = oneoff("jobs", "logs", job_id, "--json").stdout.splitlines()
    # stdout and stderr are stamped apart by Docker: only each stream's order is certain.
    assert sorted(json.loads(line)["message"] for line in raw) == ["a", "b", "c"]


def test_errors_exit_with_the_documented_codes(oneoff, job_service, workspace, api_key):
    bad_key = oneoff("services", "list", key="rnd_not-a-key")
    assert bad_key.returncode == 77
    assert bad_key.stderr == b"oneoff: error: invalid or revoked API key (HTTP 401)\n"

    viewer = make_member(workspace, "viewer-cli@example.com", Role.VIEWER)
    _, read_only = ApiKey.issue(viewer, workspace)
    refused = oneoff("jobs", "run", job_service.id, "--", "true", key=read_only)
    assert refused.returncode == 77, refused.stderr
    assert not Job.objects.exists()

    unknown = oneoff("jobs", "get", "job-" + "0" * 20)
    assert unknown.returncode == 66
    assert b"no job job-00000000000000000000" in unknown.stderr
    assert oneoff("jobs", "list", "no-such-service").returncode == 66
    assert oneoff("jobs", "get", "job-" + "0" * 20, "-s", job_service.id).returncode == 66

    started = time.monotonic()
    unreachable = oneoff("services", "list", url="http://127.0.0.1:9")
    assert unreachable.returncode == 69
    assert b"cannot reach http://127.0.0.1:9: connection refused" in unreachable.stderr
    assert time.monotonic() - started < 10

    for args in (
        ("jobs", "run", job_service.id),  # no command
        ("jobs", "frobnicate"),
        ("jobs", "list", "runner", "--limit", "0"),
        ("jobs", "run", job_service.id, "--env", "NOEQUALS", "--", "true"),
    ):
        result = oneoff(*args)
        assert result.returncode == 64, (args, result.stderr)

    refused = oneoff("jobs", "run", job_service.id, "--plan", "plan-nope", "--", "true")
    assert refused.returncode == 65, refused.stderr
    assert refused.stderr.startswith(b"oneoff: error: planId: ")

    # The key is in no error and no verbose line.
    for result in (
        oneoff("-v", "jobs", "get", "job-" + "0" * 20),
        oneoff("-v", "jobs", "run", job_service.id, "--wait", "--", "exit 2"),
    ):
        assert result.returncode in (66, 2)
        assert b"> GET /v1/services" in result.stderr
        assert api_key.encode() not in result.stdout + result.stderr


def test_the_config_file_supplies_url_and_key(oneoff_server, api_key, home):
    env = cli_env(home, None, None)
    nothing = subprocess.run(
        [ONEOFF, "services", "list"], cwd=home, env=env, capture_output=True, check=False
    )
    assert nothing.returncode == 78
    assert b"no API URL" in nothing.stderr

    subprocess.run(
        [ONEOFF, "config", "set", "api-url", oneoff_server.url], cwd=home, env=env, check=True
    )
    subprocess.run(
        [ONEOFF, "config", "set", "api-key"],
        cwd=home,
        env=env,
        input=api_key.encode() + b"\n",
        check=True,
        capture_output=True,
    )
    path = home / ".config" / "oneoff" / "config.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    listed = subprocess.run(
        [ONEOFF, "services", "list", "--json"], cwd=home, env=env, capture_output=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    shown = subprocess.run(
        [ONEOFF, "config", "show"], cwd=home, env=env, capture_output=True, check=True
    )
    assert api_key.encode() not in shown.stdout
    assert b"api-key  set (from " in shown.stdout

    path.chmod(0o644)
    unsafe = subprocess.run(
        [ONEOFF, "services", "list"], cwd=home, env=env, capture_output=True, check=False
    )
    assert unsafe.returncode == 78
    assert b"is readable by others (mode 0644)" in unsafe.stderr
    assert api_key.encode() not in unsafe.stderr


def test_colour_only_on_a_terminal(oneoff_server, api_key, home, job_service):
    def on_a_terminal(**extra) -> bytes:
        master, slave = pty.openpty()
        env = {**cli_env(home, oneoff_server.url, api_key), **extra}
        process = subprocess.Popen(
            [ONEOFF, "services", "list"], cwd=home, env=env, stdin=slave, stdout=slave
        )
        os.close(slave)
        try:
            assert process.wait(30) == 0
            return _read_until(master, b"runner", 5)
        finally:
            os.close(master)

    assert b"\x1b[1mID" in on_a_terminal()
    plain = on_a_terminal(NO_COLOR="1")
    assert b"\x1b[" not in plain
    assert b"ID" in plain


def test_env_and_timeout_overrides_reach_the_job(oneoff, job_service):
    """``--env`` and ``--timeout`` against the live API's per-job overrides: the value is in the
    job's container env and snapshot, not in the service's env vars; a 2 s timeout ends a long
    job ``failed`` with ``timedOutSeconds`` and the client exits 124."""
    ran = oneoff(
        "jobs", "run", job_service.id, "--env", "GREETING=from-the-cli", "--wait", "--json",
        "--", "echo $GREETING",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    body = json.loads(ran.stdout)
    job = Job.objects.get(pk=body["id"])
    # Printed by the job, and masked in its log as every snapshot value of 6+ characters is.
    assert list(job.log_lines.values_list("text", flat=True)) == ["****"]
    assert job.env_snapshot.values["GREETING"] == "from-the-cli"
    assert not job_service.env_vars.filter(key="GREETING").exists()
    assert body["envVarOverrides"] == ["GREETING"]

    timed = oneoff(
        "jobs", "run", job_service.id, "--timeout", "2", "--wait", "--json", "--", "sleep 30"
    )  # fmt: skip
    assert timed.returncode == 124, timed.stderr
    body = json.loads(timed.stdout)
    assert body["status"] == "failed"
    assert body["reason"] == {"timedOutSeconds": 2}
    assert body["timeoutSeconds"] == 2


def test_rerun_on_latest_and_exactly(oneoff, job_service):
    """``jobs rerun`` against the live API: on latest takes today's env, ``--exact`` the
    original's snapshot; ``--wait`` exits with the rerun's exit code."""
    from services.models import EnvVar

    EnvVar.objects.create(service=job_service, key="GREETING", value="old")
    first = oneoff(
        "jobs", "run", job_service.id, "--wait", "--json", "--", "echo $GREETING; exit 4"
    )
    assert first.returncode == 4, first.stderr
    original = json.loads(first.stdout)["id"]
    EnvVar.objects.filter(service=job_service, key="GREETING").update(value="new")

    latest = oneoff("jobs", "rerun", original, "--wait", "--json")
    exact = oneoff("jobs", "rerun", original, "--exact", "--wait", "--json")
    for result, greeting, is_exact in ((latest, "new", False), (exact, "old", True)):
        assert result.returncode == 4, result.stderr
        body = json.loads(result.stdout)
        assert (body["rerunOf"], body["exact"]) == (original, is_exact)
        job = Job.objects.get(pk=body["id"])
        assert list(job.log_lines.values_list("text", flat=True)) == [greeting]
    missing = oneoff("jobs", "rerun", "job-" + "0" * 20)
    assert missing.returncode != 0
    assert b"no job" in missing.stderr

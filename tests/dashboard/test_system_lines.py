"""System lines in a job's log: what Oneoff knows about the run, in a style of its own."""

from jobs.models import JobStatus
from tests.helpers import htmx


def page(job):
    return f"/services/{job.service_id}/jobs/{job.id}/"


def test_a_finished_job_tells_its_start_and_exit(owner, make_job, login):
    job = make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3}, host="runner-1")
    body = login(owner).get(page(job)).content.decode()
    assert '<li class="system" role="note">Started on runner-1 (Starter: ' in body
    assert "Exited with code 3: the command reported an error</li>" in body


def test_137_and_143_say_what_they_mean(owner, make_job, login):
    killed = make_job(status=JobStatus.FAILED, exit_code=137, reason={"nonZeroExit": 137})
    body = login(owner).get(page(killed)).content.decode()
    assert "Exited with code 137: killed (SIGKILL): out of memory or stopped by force" in body
    stopped = make_job(status=JobStatus.FAILED, exit_code=143, reason={"nonZeroExit": 143})
    assert "code 143: terminated (SIGTERM)" in login(owner).get(page(stopped)).content.decode()


def test_oom_names_the_plans_limit_and_cancel_names_who(owner, make_job, login):
    oom = make_job(
        status=JobStatus.FAILED, exit_code=137, reason={"oomKilled": {"memoryLimit": "512Mi"}}
    )
    body = login(owner).get(page(oom)).content.decode()
    assert "Out of memory: the job used its plan&#x27;s limit of 512 MB</li>" in body
    canceled = make_job(status=JobStatus.CANCELED, reason={"canceledBy": "dave@acme.test"})
    body = login(owner).get(page(canceled)).content.decode()
    assert '<li class="system" role="note">Canceled by dave@acme.test</li>' in body


def test_a_running_job_has_no_end_line_until_it_ends(owner, make_job, login):
    job = make_job(status=JobStatus.RUNNING, lines=["a"])
    body = login(owner).get(page(job)).content.decode()
    assert "Exited with code" not in body
    job.status, job.exit_code = JobStatus.SUCCEEDED, 0
    job.save()
    tail = f"{page(job)}logs/?after=1&status=running"
    body = login(owner).get(tail, **htmx()).content.decode()
    assert "Exited with code 0: success" in body


def test_system_lines_are_escaped(owner, make_job, login):
    job = make_job(status=JobStatus.CANCELED, reason={"canceledBy": "<b>x</b>"}, host="<i>h</i>")
    body = login(owner).get(page(job)).content.decode()
    assert "<b>x</b>" not in body
    assert "<i>h</i>" not in body
    assert "Canceled by &lt;b&gt;x&lt;/b&gt;" in body

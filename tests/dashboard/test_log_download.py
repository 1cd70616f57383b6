from django.http import StreamingHttpResponse
from django.utils import timezone

from dashboard.views import jobs as views
from tests.helpers import add_lines


def url(job):
    return f"/services/{job.service_id}/jobs/{job.id}/logs.txt"


def test_it_streams_the_whole_log_as_text(owner, make_job, login):
    job = make_job(lines=["first <b>", ("oops", 2), "last"])
    r = login(owner).get(url(job))
    assert r.status_code == 200
    assert isinstance(r, StreamingHttpResponse)
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    assert r["Content-Disposition"] == f'attachment; filename="{job.id}.log"'
    text = b"".join(r.streaming_content).decode()
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("\tstdout\tfirst <b>")
    assert lines[1].endswith("\tstderr\toops")
    assert lines[2].endswith("\tstdout\tlast")


def test_it_reads_the_log_in_chunks(
    owner, make_job, login, monkeypatch, django_assert_max_num_queries
):
    job = make_job()
    add_lines(job, [f"l{i}" for i in range(1, 26)])
    chunks = list(views._log_text(job.pk, chunk=10))
    assert len(chunks) == 3
    assert "".join(chunks).count("\n") == 25
    assert chunks[1].startswith(chunks[1].split("\t")[0])
    assert "\tl11\n" in chunks[1]


def test_purged_logs_are_410(owner, make_job, login):
    job = make_job(lines=["x"], logs_purged_at=timezone.now())
    r = login(owner).get(url(job))
    assert r.status_code == 410
    assert b"expired" in r.content


def test_viewer_may_download(viewer, make_job, login):
    assert login(viewer).get(url(make_job(lines=["x"]))).status_code == 200


def test_outsider_gets_404(outsider, make_job, login):
    assert login(outsider).get(url(make_job())).status_code == 404


def test_anonymous_is_redirected(client, make_job):
    assert client.get(url(make_job())).status_code == 302


def test_it_includes_sequence_zero(owner, make_job, login):
    job = make_job()
    add_lines(job, ["zero", "one"], start=0)
    text = b"".join(login(owner).get(url(job)).streaming_content).decode()
    assert text.splitlines()[0].endswith("\tzero")


def test_the_raw_view_is_the_text_inline(owner, viewer, outsider, make_job, login):
    job = make_job(lines=["\x1b[31mred\x1b[0m <script>", "two"])
    r = login(owner).get(url(job) + "?view=raw")
    assert r.status_code == 200
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    assert r["Content-Disposition"].startswith("inline;")
    assert r["X-Content-Type-Options"] == "nosniff"
    assert b"".join(r.streaming_content).decode() == "\x1b[31mred\x1b[0m <script>\ntwo\n"
    assert login(viewer).get(url(job) + "?view=raw").status_code == 200
    assert login(outsider).get(url(job) + "?view=raw").status_code == 404

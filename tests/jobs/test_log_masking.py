"""Masking env values in job logs at ingest (jobs/logs/mask.py, LogWriter), on the real database.
The same with real Docker jobs and every outlet: test_log_masking_live.py."""

import logging

import pytest

from jobs.launch import create_job
from jobs.logs import mask
from jobs.logs.mask import LogMasker, maskable_values
from jobs.logs.store import LogWriter
from jobs.models import EnvSnapshot, JobLogLine
from services.models import EnvVar

T0 = 1_780_000_000 * 10**9
SECRET = "hunter2-secret"


def test_values_of_six_characters_and_every_secret_value_are_masked():
    values = {"LONG": "abcdef", "SHORT": "abcde", "PIN": "42", "EMPTY": "", "PEM": "line-1\nxy"}
    found = maskable_values(values, ["PIN", "EMPTY"])
    assert found == [b"abcdef", b"line-1", b"42"]  # longest first; no empty value


def test_a_value_is_masked_whole_and_inside_a_longer_word():
    masker = LogMasker(maskable_values({"A": SECRET, "B": "hunter2"}, []))
    out = masker.feed([(T0, 1, b"x hunter2-secret y\n"), (T0 + 1, 1, b"ahunter2-secretb\n")])
    assert [p for _, _, p in out] == [b"x **** y\n", b"a****b\n"]  # the longer value first
    assert masker.feed([(T0, 1, b"hunter2\n")]) == [(T0, 1, b"****\n")]


def test_a_batch_of_lines_is_masked_line_by_line_and_pieces_inside_it_too():
    masker = LogMasker([SECRET.encode()])
    batch = [(T0, 1, b"a\n"), (T0 + 1, 2, b"b hunter2-secret\n"), (T0 + 2, 1, b"c\n")]
    assert masker.feed(batch) == [(T0, 1, b"a\n"), (T0 + 1, 2, b"b ****\n"), (T0 + 2, 1, b"c\n")]
    batch = [(T0, 1, b"x hunter"), (T0 + 1, 1, b"2-secret\n"), (T0 + 2, 1, b"hunter2-secret\n")]
    assert masker.feed(batch) == [(T0, 1, b"x ****"), (T0 + 1, 1, b"\n"), (T0 + 2, 1, b"****\n")]
    # Not a value across two lines, nor across the two streams.
    batch = [(T0, 1, b"hunter"), (T0 + 1, 2, b"2-secret\n"), (T0 + 2, 1, b"!\n")]
    assert masker.feed(batch) == batch


def test_pieces_of_one_line_are_held_and_masked_where_the_value_starts():
    masker = LogMasker([SECRET.encode()])
    assert masker.feed([(T0, 1, b"x" * 10 + b"hunt")]) == []  # held: the line is not whole
    out = masker.feed([(T0 + 1, 1, b"er2-secret tail\n")])
    assert out == [(T0, 1, b"x" * 10 + b"****"), (T0 + 1, 1, b" tail\n")]
    # Three pieces, the end of the log: released masked.
    assert masker.feed([(T0, 1, b"hu"), (T0 + 1, 1, b"nter2-sec"), (T0 + 2, 1, b"ret!")]) == []
    assert [p for _, _, p in masker.release()] == [b"****", b"", b"!"]


def test_the_other_stream_releases_held_pieces_and_the_carry_masks_the_rest():
    masker = LogMasker([SECRET.encode()])
    assert masker.feed([(T0, 1, b"hunt")]) == []
    assert masker.feed([(T0 + 1, 2, b"err\n")]) == [(T0, 1, b"hunt"), (T0 + 1, 2, b"err\n")]
    # The rest of the value, when the line goes on, is still masked.
    assert masker.feed([(T0 + 2, 1, b"er2-secret tail\n")]) == [(T0 + 2, 1, b"**** tail\n")]
    assert masker.feed([(T0 + 3, 1, b"er2-secret\n")]) == [(T0 + 3, 1, b"er2-secret\n")]


def test_too_many_held_bytes_are_released(monkeypatch):
    monkeypatch.setattr(mask, "HOLD_MAX_BYTES", 10)
    masker = LogMasker([SECRET.encode()])
    assert masker.feed([(T0, 1, b"12345")]) == []
    assert masker.feed([(T0 + 1, 1, b"hunter")]) == [(T0, 1, b"12345"), (T0 + 1, 1, b"hunter")]
    assert masker.feed([(T0 + 2, 1, b"2-secret\n")]) == [(T0 + 2, 1, b"****\n")]


def test_many_values_use_the_regex_prefilter():
    values = [f"value-{i:04d}-x".encode() for i in range(200)]
    masker = LogMasker(values)
    assert not masker.substrings
    assert masker.feed([(T0, 1, b"a value-0199-x b\n")]) == [(T0, 1, b"a **** b\n")]
    plain = [(T0, 1, b"nothing here\n")]
    assert masker.feed(plain) is plain


def test_the_masker_never_shows_its_values():
    masker = LogMasker([SECRET.encode()])
    assert SECRET not in repr(masker)
    assert SECRET not in str(masker)


@pytest.fixture
def secret_service(job_service):
    EnvVar.objects.create(service=job_service, key="API_TOKEN", value=SECRET)
    EnvVar.objects.create(service=job_service, key="NAME", value="short")  # 5 chars, not secret
    EnvVar.objects.create(service=job_service, key="PIN", value="4242", secret=True)
    return job_service


def stored(job):
    return list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("text", flat=True))


def test_the_writer_masks_before_storing_and_holds_pieces_out_of_the_cursor(secret_service):
    job = create_job(secret_service, "true")
    assert job.env_snapshot.secret_keys == ["PIN"]
    writer = LogWriter.for_job(job.id)
    writer.add_batch(
        [
            (T0, 1, b"token hunter2-secret, name short, pin 4242\n"),
            (T0 + 1, 1, b"x" * 20 + b"hunter"),  # a piece: held back
        ]
    )
    writer.flush()
    assert stored(job) == ["token ****, name short, pin ****"]
    job.refresh_from_db()
    assert (job.log_cursor_ns, job.log_cursor_count) == (T0, 1)  # not past the held piece
    # A follower starting over reads the held piece again: nothing is lost or doubled.
    writer = LogWriter.for_job(job.id)
    writer.add_batch([(T0, 1, b"already stored\n"), (T0 + 1, 1, b"x" * 20 + b"hunter")])
    writer.add_batch([(T0 + 2, 1, b"2-secret!\n")])
    writer.finish()
    assert stored(job) == ["token ****, name short, pin ****", "x" * 20 + "****", "!"]


def test_finish_stores_the_pieces_the_log_ended_with(secret_service):
    job = create_job(secret_service, "true")
    writer = LogWriter.for_job(job.id)
    writer.add(T0, 1, b"ends with hunter2-secret")
    assert writer.flush() == []
    assert [line.text for line in writer.finish()] == ["ends with ****"]


def test_masking_uses_the_snapshot_not_todays_env(secret_service):
    job = create_job(secret_service, "true", env_overrides=[("EXTRA", "override-value")])
    EnvVar.objects.filter(service=secret_service, key="API_TOKEN").update(value="new-value-1")
    EnvVar.objects.filter(service=secret_service, key="PIN").update(secret=False)
    writer = LogWriter.for_job(job.id)
    writer.add(T0, 1, b"hunter2-secret new-value-1 4242 override-value\n")
    writer.finish()
    assert stored(job) == ["**** new-value-1 **** ****"]


def test_a_service_with_masking_off_stores_values_as_printed(secret_service):
    secret_service.mask_secrets = False
    secret_service.save()
    job = create_job(secret_service, "true")
    writer = LogWriter.for_job(job.id)
    assert writer.masker is None
    writer.add(T0, 1, b"hunter2-secret 4242\n")
    writer.finish()
    assert stored(job) == ["hunter2-secret 4242"]


def test_a_snapshot_records_secret_keys_as_they_were(secret_service):
    snapshot = EnvSnapshot.capture(secret_service)
    EnvVar.objects.filter(service=secret_service).update(secret=True)
    snapshot.refresh_from_db()
    assert snapshot.secret_keys == ["PIN"]
    assert EnvSnapshot.capture(secret_service).secret_keys == ["API_TOKEN", "NAME", "PIN"]


def test_no_value_reaches_the_log_records(secret_service, caplog):
    caplog.set_level(logging.DEBUG)
    job = create_job(secret_service, "true")
    writer = LogWriter.for_job(job.id)
    writer.add(T0, 1, b"hunter2-secret\n")
    writer.finish()
    assert SECRET not in caplog.text
    assert "4242" not in caplog.text

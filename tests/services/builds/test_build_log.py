"""The build log buffer: partial lines, cleaning, caps, masking and batching (no Docker)."""

from services.builds.executor import BuildLog
from services.models import Build


def lines(build) -> list[str]:
    return list(build.log_lines.order_by("seq").values_list("text", flat=True))


def test_it_joins_partial_chunks_into_lines(service):
    build = Build.objects.create(service=service)
    log = BuildLog(build)

    log.write("Step 1/2 : FROM x")
    log.write("\n ---> abc\nhal")
    log.write("f a line")
    log.end_partial()
    log.flush()

    assert lines(build) == ["Step 1/2 : FROM x", " ---> abc", "half a line"]
    assert list(build.log_lines.values_list("seq", flat=True).order_by("seq")) == [1, 2, 3]


def test_it_cleans_text(service):
    build = Build.objects.create(service=service)
    log = BuildLog(build, mask="user:token@")

    log.line("nul\x00byte")
    log.line("progress 10%\rprogress 100%\r")
    log.line("fatal: https://user:token@example.test/x.git not found")
    log.line("x" * 10_000)
    log.flush()

    stored = lines(build)
    assert stored[:3] == [
        "nulbyte",
        "progress 100%",
        "fatal: https://***@example.test/x.git not found",
    ]
    assert stored[3].endswith(" [line truncated]")
    assert len(stored[3]) < 8300


def test_it_caps_the_log_but_keeps_its_own_lines(service, settings):
    settings.BUILD_LOG_MAX_BYTES = 100
    build = Build.objects.create(service=service)
    log = BuildLog(build)

    for i in range(50):
        log.line(f"output line {i}")
    log.line("==> Build failed: reason", system=True)
    log.flush()

    stored = lines(build)
    assert stored[:2] == ["output line 0", "output line 1"]
    assert "[build log truncated: output beyond 100 bytes is not stored]" in stored
    assert "output line 49" not in stored
    assert stored[-1] == "==> Build failed: reason"


def test_it_continues_the_sequence_of_existing_lines(service):
    build = Build.objects.create(service=service)
    first = BuildLog(build)
    first.line("one")
    first.flush()

    second = BuildLog(build)
    second.line("two")
    second.flush()

    assert list(build.log_lines.order_by("seq").values_list("seq", "text")) == [
        (1, "one"),
        (2, "two"),
    ]


def test_it_does_not_hoard_output_without_newlines(service):
    build = Build.objects.create(service=service)
    log = BuildLog(build)

    log.write("y" * 20_000)
    log.flush()

    (stored,) = lines(build)
    assert stored.endswith(" [line truncated]")
    assert log.partial == ""

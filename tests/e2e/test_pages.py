"""Browser tests of the pages that need no running job: sign-in, search, download, escaping,
what a viewer sees, and the screenshots."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import JobStatus
from services.models import EnvVar
from tests.helpers import add_lines, screenshot, sign_in

# Elements sticking out of a phone's width, to say what to fix when a page scrolls sideways.
WIDE = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > 392)
  .slice(0, 8)
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""

# A job's lines are numbered from 1 for seq 0 (real logs start there); add_lines starts at seq 1,
# so its first line is #L2.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_sign_in_and_out(page, live_server, owner, workspace, service):
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    sign_in(page, live_server, "alice@acme.test")
    expect(page).to_have_url(re.compile(f"/workspaces/{workspace.id}/$"))
    expect(page.get_by_role("link", name="web", exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))


def test_wrong_password_says_so(page, live_server, owner):
    page.goto(live_server.url + "/login/")
    page.get_by_label("Email or username").fill("alice@acme.test")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")


def test_search_the_log(page, live_server, owner, make_job):
    job = make_job(lines=["Applying users.0001", "noise", "applying ORDERS.0002 <b>", "done"])
    sign_in(page, live_server, "alice@acme.test", f"/services/{job.service_id}/jobs/{job.id}/")
    page.evaluate("window.__noReload = 1")
    # As written, case included (GET /v1/logs text); a regular expression between slashes.
    page.get_by_label("Search this job's logs").fill("applying")
    page.get_by_label("Search this job's logs").press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=applying$"))
    lines = page.locator("#log-lines li.line")
    expect(lines).to_have_count(1)
    page.get_by_label("Search this job's logs").fill("/(?i)applying/")
    page.get_by_label("Search this job's logs").press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=%2F\(%3Fi\)applying%2F$"))
    expect(lines).to_have_count(2)
    expect(page.locator("#log-lines mark")).to_have_text(["Applying", "applying"])
    expect(lines.nth(1)).to_contain_text("applying ORDERS.0002 <b>")
    assert page.evaluate("window.__noReload") == 1
    page.get_by_role("link", name="Clear search").click()
    expect(page.locator("#log-lines li.line")).to_have_count(4)
    page.go_back()
    expect(page.locator("#log-lines li.line")).to_have_count(2)


def test_download_the_log(page, live_server, owner, make_job, tmp_path):
    job = make_job(lines=["first", ("second on stderr", 2), "<script>third</script>"])
    sign_in(page, live_server, "alice@acme.test", f"/services/{job.service_id}/jobs/{job.id}/")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == f"{job.id}.log"
    target = tmp_path / "log.txt"
    download.save_as(target)
    lines = target.read_text().splitlines()
    assert [line.split("\t", 2)[1:] for line in lines] == [
        ["stdout", "first"],
        ["stderr", "second on stderr"],
        ["stdout", "<script>third</script>"],
    ]


def test_load_earlier_lines(page, live_server, owner, make_job):
    job = make_job()
    add_lines(job, [f"line {i}" for i in range(1, 1101)])
    sign_in(page, live_server, "alice@acme.test", f"/services/{job.service_id}/jobs/{job.id}/")
    expect(page.locator("#log-lines li.line")).to_have_count(1000)
    expect(page.locator("#L102")).to_be_attached()
    page.get_by_role("button", name="Load earlier lines").click()
    expect(page.locator("#log-lines li.line")).to_have_count(1100)
    expect(page.locator("#log-lines li.line").first).to_have_id("L2")
    expect(page.get_by_role("button", name="Load earlier lines")).to_have_count(0)


def test_html_in_output_and_command_is_shown_as_text(page, live_server, owner, make_job):
    payload = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
    job = make_job(command=f"echo '{payload}'", lines=[payload])
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, live_server, "alice@acme.test", f"/services/{job.service_id}/jobs/")
    expect(page.locator(f"#row-{job.id} .cmd")).to_contain_text("<script>window.__xss=1</script>")
    page.get_by_role("link", name=job.id).click()
    expect(page.locator("#L2 .msg")).to_have_text(payload)
    expect(page.locator("code.command")).to_have_text(f"echo '{payload}'")
    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert dialogs == []


def test_a_viewer_sees_no_run_cancel_or_env_values(page, live_server, viewer, service, make_job):
    EnvVar.objects.create(service=service, key="DATABASE_URL", value="postgres://secret-value")
    running = make_job(status=JobStatus.RUNNING, lines=["working"])
    sign_in(page, live_server, "vera@acme.test", f"/services/{service.id}/jobs/")
    expect(page.locator(f"#row-{running.id}")).to_be_visible()
    expect(page.get_by_role("button", name="Run job", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Cancel|Rerun)"))).to_have_count(0)
    page.get_by_role("link", name=running.id).click()
    expect(page.locator("#L2")).to_contain_text("working")
    expect(page.get_by_role("button", name=re.compile("Cancel|Rerun"))).to_have_count(0)
    page.get_by_role("link", name="Environment").click()
    expect(page.get_by_text("DATABASE_URL")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Reveal"))).to_have_count(0)
    assert "secret-value" not in page.content()


def test_an_admin_reveals_one_env_value(page, live_server, owner, service):
    EnvVar.objects.create(service=service, key="API_TOKEN", value="tok-123")
    EnvVar.objects.create(service=service, key="OTHER", value="other-456")
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/env/")
    assert "tok-123" not in page.content()
    page.get_by_role("button", name="Reveal the value of API_TOKEN").click()
    expect(page.get_by_text("tok-123")).to_be_visible()
    assert "other-456" not in page.content()
    page.get_by_role("button", name="Hide the value of API_TOKEN").click()
    expect(page.get_by_text("tok-123")).to_have_count(0)


def test_filters_are_in_the_url_and_load_more_pages(page, live_server, owner, service, make_job):
    from datetime import timedelta

    from django.utils import timezone

    base = timezone.now()
    jobs = [
        make_job(
            status=JobStatus.FAILED if i % 2 else JobStatus.SUCCEEDED,
            created_at=base - timedelta(minutes=i),
        )
        for i in range(60)
    ]
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    rows = page.locator("#job-rows tr.job")
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(50)
    page.get_by_label("Failed").check()
    expect(page).to_have_url(re.compile(r"\?status=failed"))
    expect(rows).to_have_count(25)
    expect(page.locator("#job-rows .badge.succeeded")).to_have_count(0)
    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(30)
    page.reload()
    expect(page.get_by_label("Failed")).to_be_checked()
    expect(rows).to_have_count(25)
    assert jobs


def test_screenshots_of_the_jobs_page_and_a_job_page(page, live_server, owner, service, make_job):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    make_job(status=JobStatus.RUNNING, command="python manage.py rebuild_index --verbose")
    make_job(status=JobStatus.PENDING, command="./bin/send-digest --all")
    make_job(
        status=JobStatus.FAILED,
        command="python manage.py migrate",
        exit_code=137,
        reason={"oomKilled": {"memoryLimit": 512 * 1024 * 1024}},
        created_at=now - timedelta(hours=1),
    )
    make_job(
        status=JobStatus.CANCELED,
        command="sleep 3600",
        created_at=now - timedelta(hours=2),
        reason={"canceledBy": "alice@acme.test"},
    )
    job = make_job(
        command="python manage.py migrate --noinput", created_at=now - timedelta(hours=3)
    )
    add_lines(
        job,
        [
            "Operations to perform:",
            "  Apply all migrations: admin, auth, contenttypes, sessions, shop",
            "Running migrations:",
            "  Applying shop.0042_order_index... OK",
            ("warning: <deprecated> setting DEFAULT_FILE_STORAGE", 2),
            "  Applying shop.0043_backfill... OK",
        ],
    )
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    expect(page.locator("#job-rows tr.job")).to_have_count(5)
    screenshot(page, "jobs-page")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "jobs-page-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, page.evaluate(WIDE)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name=job.id).click()
    expect(page.locator("#L7")).to_be_visible()
    screenshot(page, "job-page")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "job-page-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, page.evaluate(WIDE)


def test_screenshots_of_the_other_pages(page, live_server, owner, workspace, service, make_job):
    from datetime import UTC, datetime
    from decimal import Decimal

    from services.models import ApiKey, BuildLogLine

    EnvVar.objects.create(service=service, key="DATABASE_URL", value="postgres://db/acme")
    EnvVar.objects.create(service=service, key="SECRET_KEY", value="s3cr3t")
    ApiKey.issue(owner, workspace, name="ci")
    finished = datetime.now(UTC)
    make_job(finished_at=finished, billed_seconds=3600, cost=Decimal("0.0097"))
    build = service.builds.first()
    BuildLogLine.objects.create(build=build, seq=1, timestamp=finished, text="Step 1/2 : FROM x")
    sign_in(page, live_server, "alice@acme.test")
    screenshot(page, "services")
    for name, path in (
        ("builds", f"/services/{service.id}/builds/"),
        ("build", f"/services/{service.id}/builds/{build.id}/"),
        ("env", f"/services/{service.id}/env/"),
        ("api-keys", f"/workspaces/{workspace.id}/api-keys/"),
        ("usage", f"/workspaces/{workspace.id}/usage/"),
    ):
        page.goto(live_server.url + path)
        expect(page.locator("main h1").first).to_be_visible()
        screenshot(page, name)
    page.goto(f"{live_server.url}/workspaces/{workspace.id}/api-keys/")
    page.get_by_label("Name").fill("deploy")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_label("New API key")).to_have_value(re.compile("^oneoff_"))
    screenshot(page, "api-key-created")


def test_run_form_errors_show_inline(page, live_server, owner, service):
    # No successful build yet: the entry point refuses, and the 400 is swapped into the form.
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    page.evaluate("window.__noReload = 1")
    page.get_by_label("Command").fill("echo hi")
    page.get_by_role("button", name="Run job", exact=True).click()
    expect(page.locator("#run-job [role=alert]")).to_contain_text("no successful build yet")
    expect(page.get_by_label("Command")).to_have_value("echo hi")
    assert page.evaluate("window.__noReload") == 1


def test_keyboard_runs_a_job_form_and_filters(page, live_server, owner, service, make_job):
    make_job(status=JobStatus.FAILED)
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    page.get_by_label("Command").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Instance type")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Run job", exact=True)).to_be_focused()
    page.get_by_label("Failed").focus()
    page.keyboard.press("Space")
    expect(page).to_have_url(re.compile(r"\?status=failed"))


def test_the_job_page_draws_its_usage_chart(page, live_server, owner, make_job):
    """The inline SVG takes the card's width and its lines are drawn (no script, no CDN)."""
    from jobs.models import JobUsage
    from jobs.usage import MiB

    job = make_job(peak_memory_bytes=498 * MiB, cpu_seconds=2.0)
    start = job.started_at.timestamp()
    points = [[start + i, (100 + 80 * i) * MiB, 0.4 * i] for i in range(6)]
    JobUsage.objects.create(job=job, points=points)
    sign_in(page, live_server, "alice@acme.test", f"/services/{job.service_id}/jobs/{job.id}/")
    page.get_by_text("Details: build").click()  # the chart is in the folded details
    chart = page.get_by_role("img", name="Memory and CPU over the job's run")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 400
    assert box["height"] > 60
    memory = page.locator("svg.usage-chart polyline.memory")
    drawn = memory.evaluate("line => line.getBoundingClientRect().width")
    assert drawn > 0.9 * box["width"]  # from the start to the last point, across the chart
    assert memory.evaluate("line => getComputedStyle(line).stroke") != "none"
    expect(page.locator(".usage-hint")).to_have_text("Peaked at 498 of 512 MB: try Standard, 2 GB")
    screenshot(page, "job-usage")

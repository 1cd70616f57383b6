"""Browser test of log masking: an admin marks a short env var secret on the env page, a real
job prints it and its page shows ``****`` and says masking is on; turned off on the Settings
page, the next job's page shows the value as printed. Chromium against a live server, a real
Celery worker and Docker Engine."""

import pytest
from playwright.sync_api import expect

from jobs.launch import create_job
from jobs.models import JobStatus
from services.models import EnvVar, Service
from tests.helpers import screenshot, sign_in, wait_finished

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.docker,
]


def test_an_admin_marks_a_secret_and_turns_masking_off(
    page, live_server, owner, service, busybox_build, live_worker
):
    busybox_build(service)
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/env/")
    page.get_by_label("Name").fill("PIN")
    page.get_by_label("Value").fill("4242")
    page.get_by_label("Secret").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("tr", has_text="PIN").locator(".badge.secret")).to_have_text("secret")
    assert EnvVar.objects.get(service=service, key="PIN").secret

    job = create_job(service, 'echo "pin=$PIN"', user=owner)
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    page.goto(f"{live_server.url}/services/{service.id}/jobs/{job.id}/")
    expect(page.locator("#log-masking")).to_contain_text("on")
    expect(page.locator("#log-lines")).to_contain_text("pin=****")
    expect(page.locator("#log-lines")).not_to_contain_text("4242")
    screenshot(page, "job-log-masked")

    page.goto(f"{live_server.url}/services/{service.id}/settings/")
    expect(page.locator("#mask-secrets")).to_have_text("masked (****)")
    page.get_by_label("Mask env var values in job logs").uncheck()
    page.get_by_role("button", name="Update masking").click()
    expect(page.locator("#mask-secrets")).to_have_text("shown as printed")
    assert Service.objects.get(pk=service.pk).mask_secrets is False
    screenshot(page, "service-settings-masking-off")

    job = create_job(service, 'echo "pin=$PIN"', user=owner)
    wait_finished(job)
    page.goto(f"{live_server.url}/services/{service.id}/jobs/{job.id}/")
    expect(page.locator("#log-masking")).to_contain_text("off")
    expect(page.locator("#log-lines")).to_contain_text("pin=4242")

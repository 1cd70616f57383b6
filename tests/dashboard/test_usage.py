from datetime import UTC, datetime
from decimal import Decimal

from jobs.models import JobStatus


def url(workspace, query=""):
    return f"/workspaces/{workspace.id}/usage/{query}"


def test_it_totals_billed_seconds_and_cost_per_service_and_plan(
    owner, workspace, service, make_service, make_build, make_job, login
):
    nov = datetime(2026, 11, 10, tzinfo=UTC)
    make_job(finished_at=nov, billed_seconds=100, cost=Decimal("0.5"))
    make_job(finished_at=nov, billed_seconds=50, cost=Decimal("0.25"))
    worker = make_service(name="worker")
    make_build(worker)
    make_job(worker, finished_at=nov, billed_seconds=10, cost=Decimal("1.25"))
    make_job(finished_at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC), billed_seconds=999, cost=9)
    body = login(owner).get(url(workspace, "?month=2026-11")).content.decode()
    assert "November 2026: $2.00" in body
    assert '<td class="num">150</td>' in body
    assert '<td class="num">10</td>' in body
    assert '<td class="num">160</td>' in body
    assert 'style="width: 100' in body  # the biggest service's bar
    assert 'style="width: 60.0%"' in body  # 0.75 / 1.25


def test_default_month_is_the_current_one(owner, workspace, login):
    body = login(owner).get(url(workspace)).content.decode()
    assert datetime.now(UTC).strftime("%Y-%m") in body
    assert "No billed jobs" in body


def test_bad_month_is_400(owner, workspace, login):
    for bad in ("?month=2026-13", "?month=nov", "?month=1999-01"):
        r = login(owner).get(url(workspace, bad))
        assert r.status_code == 400
        assert b"month" in r.content


def test_it_counts_only_this_workspace(
    owner, outsider, workspace, other_workspace, make_service, make_build, make_job, login
):
    other = make_service(other_workspace, name="globex")
    make_build(other)
    make_job(other, finished_at=datetime(2026, 11, 2, tzinfo=UTC), billed_seconds=7, cost=1)
    body = login(owner).get(url(workspace, "?month=2026-11")).content.decode()
    assert "globex" not in body


def test_viewer_may_see_usage(viewer, workspace, login):
    assert login(viewer).get(url(workspace)).status_code == 200


def test_outsider_gets_404(outsider, workspace, login):
    assert login(outsider).get(url(workspace)).status_code == 404


def test_anonymous_is_redirected(client, workspace):
    assert client.get(url(workspace)).status_code == 302


def test_running_jobs_are_not_counted(owner, workspace, make_job, login):
    make_job(status=JobStatus.RUNNING)
    assert "No billed jobs" in login(owner).get(url(workspace)).content.decode()

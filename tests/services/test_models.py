import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from services.models import Plan, Service, Workspace

SEED = {
    "plan-srv-006": ("Starter", "srv", 512, "0.5"),
    "plan-srv-008": ("Standard", "srv", 2048, "1"),
    "plan-srv-010": ("Pro", "srv", 4096, "2"),
    "plan-srv-011": ("Pro Plus", "srv", 8192, "4"),
    "plan-srv-013": ("Pro Max", "srv", 16384, "8"),
    "plan-srv-014": ("Pro Ultra", "srv", 32768, "16"),
    "plan-crn-003": ("Starter", "cron", 512, "0.5"),
    "plan-crn-005": ("Standard", "cron", 2048, "1"),
    "plan-crn-007": ("Pro", "cron", 4096, "2"),
    "plan-crn-008": ("Pro Plus", "cron", 8192, "4"),
}


@pytest.mark.django_db
def test_it_has_no_missing_migrations():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)


@pytest.mark.django_db
def test_seeded_plans_match_the_seed_tables():
    plans = {
        p.id: (p.name, p.kind, p.memory_mb, str(p.cpu.normalize())) for p in Plan.objects.all()
    }
    assert plans == SEED


@pytest.mark.django_db
def test_the_per_second_rate_derives_from_the_monthly_price():
    plan = Plan.objects.get(id="plan-srv-008")
    plan.price_monthly = Decimal("25.92")
    plan.save()
    assert plan.rate_per_second == Decimal("0.00001")
    assert plan.cost_of(3600) == Decimal("0.036000")
    assert not plan.is_free
    plan.price_monthly = 0
    assert plan.is_free


@pytest.mark.django_db
def test_service_ids_depend_on_type(make_service):
    assert make_service(type="web_service").id.startswith("srv-")
    assert make_service(type="background_worker").id.startswith("srv-")
    cron = make_service(type="cron_job")
    assert cron.id.startswith("crn-")
    assert [p.kind for p in cron.valid_plans()] == ["cron"] * 4


@pytest.mark.django_db
def test_workspace_ids_are_public_ids():
    assert Workspace.objects.create(name="X").id.startswith("tea-")


@pytest.mark.django_db
def test_for_user_only_sees_own_workspace(service, owner, outsider, make_service, other_workspace):
    theirs = make_service(other_workspace, name="theirs")
    assert list(Service.objects.for_user(owner)) == [service]
    assert list(Service.objects.for_user(outsider)) == [theirs]


@pytest.mark.django_db
def test_latest_successful_build_skips_failed_ones(service, make_build):
    good = make_build(service)
    make_build(service, status="failed")
    make_build(service, status="building")
    assert service.latest_successful_build() == good


@pytest.mark.django_db
def test_a_services_current_build_is_never_another_workspaces(
    service, make_build, make_service, other_workspace
):
    """``current_build`` reads through queries compiled once a process (``_LATEST_BUILD``,
    ``_LATEST_REDEPLOY``) and reused with each service's id: another workspace's newer build
    and newer redeploy never become this service's, whichever service asks first; its job
    creates snapshot its own build."""
    from services.models import Deploy, DeployTrigger

    ours = make_build(service)
    theirs_service = make_service(other_workspace, name="theirs")
    theirs_old = make_build(theirs_service)
    theirs_new = make_build(theirs_service)
    Deploy.objects.create(
        service=theirs_service, build=theirs_old, trigger=DeployTrigger.ROLLBACK, reuses_build=True
    )
    for _ in range(2):  # each order, the compiled queries warm
        assert service.current_build() == ours
        assert theirs_service.current_build() == theirs_old  # its rollback wins over theirs_new
        assert theirs_service.latest_successful_build() == theirs_new
        assert service.latest_successful_build() == ours
    from jobs.launch import create_job

    assert create_job(service, "true").build_id == ours.id
    assert create_job(theirs_service, "true").build_id == theirs_old.id

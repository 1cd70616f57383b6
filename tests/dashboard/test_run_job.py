from jobs.models import Job, JobStatus
from tests.helpers import htmx


def url(service):
    return f"/services/{service.id}/jobs/run/"


def test_it_creates_a_job_through_the_entry_point(developer, service, build, login):
    r = login(developer).post(url(service), {"start_command": "echo hi", "plan": "plan-srv-008"})
    job = Job.objects.get()
    assert r.status_code == 302
    assert r["Location"] == f"/services/{service.id}/jobs/{job.id}/"
    assert job.start_command == "echo hi"
    assert job.plan_id == "plan-srv-008"
    assert job.build == build
    assert job.created_by == developer
    assert job.status == JobStatus.PENDING


def test_htmx_gets_a_fresh_form_and_the_new_row(owner, service, build, login):
    r = login(owner).post(
        url(service),
        {"start_command": "echo <b>hi</b>", "plan": service.plan_id},
        **htmx("run-job"),
    )
    assert r.status_code == 200
    body = r.content.decode()
    job = Job.objects.get()
    assert body.lstrip().startswith('<section id="run-job"')
    assert '<template><tbody hx-swap-oob="afterbegin:#job-rows">' in body
    assert f'id="row-{job.id}"' in body
    assert "Started" in body
    assert "echo &lt;b&gt;hi&lt;/b&gt;" in body
    assert 'value="echo' not in body  # the form is fresh


def test_the_plan_select_holds_only_valid_plans(owner, service, build, login):
    body = login(owner).get(f"/services/{service.id}/jobs/").content.decode()
    assert 'value="plan-srv-006" selected' in body
    assert 'value="plan-srv-014"' in body
    assert "plan-crn-" not in body


def test_cron_service_offers_cron_plans(owner, make_service, make_build, login):
    cron = make_service(name="nightly", type="cron_job")
    make_build(cron)
    body = login(owner).get(f"/services/{cron.id}/jobs/").content.decode()
    assert 'value="plan-crn-003"' in body
    assert "plan-srv-" not in body


def test_a_plan_of_the_wrong_kind_is_400_inline(owner, service, build, login):
    r = login(owner).post(
        url(service), {"start_command": "echo hi", "plan": "plan-crn-003"}, **htmx("run-job")
    )
    assert r.status_code == 400
    body = r.content.decode()
    assert 'id="id_plan_error"' in body
    assert "plan-crn-003" in body
    assert not Job.objects.exists()


def test_an_empty_command_is_400_inline(owner, service, build, login):
    r = login(owner).post(url(service), {"start_command": "", "plan": service.plan_id}, **htmx())
    assert r.status_code == 400
    assert 'id="id_start_command_error"' in r.content.decode()


def test_a_blank_command_is_refused_by_the_entry_point(owner, service, build, login):
    r = login(owner).post(url(service), {"start_command": "   ", "plan": service.plan_id}, **htmx())
    assert r.status_code == 400
    assert "must be a non-empty string" in r.content.decode()


def test_no_successful_build_is_400_with_the_reason(owner, service, login):
    r = login(owner).post(
        url(service), {"start_command": "echo", "plan": service.plan_id}, **htmx()
    )
    assert r.status_code == 400
    body = r.content.decode()
    assert "no successful build yet" in body
    assert 'role="alert"' in body


def test_without_htmx_errors_render_the_whole_page_400(owner, service, build, login):
    r = login(owner).post(url(service), {"start_command": "", "plan": service.plan_id})
    assert r.status_code == 400
    assert "<!doctype html>" in r.content.decode()


def test_viewer_gets_403(viewer, service, build, login):
    r = login(viewer).post(url(service), {"start_command": "echo", "plan": service.plan_id})
    assert r.status_code == 403
    assert not Job.objects.exists()


def test_outsider_gets_404(outsider, service, build, login):
    r = login(outsider).post(url(service), {"start_command": "echo", "plan": service.plan_id})
    assert r.status_code == 404


def test_anonymous_is_redirected(client, service, build):
    r = client.post(url(service), {"start_command": "echo", "plan": service.plan_id})
    assert r.status_code == 302
    assert not Job.objects.exists()


def test_get_is_405(owner, service, login):
    assert login(owner).get(url(service)).status_code == 405


def test_csrf_is_enforced(owner, service, build):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    r = client.post(url(service), {"start_command": "echo", "plan": service.plan_id})
    assert r.status_code == 403
    assert not Job.objects.exists()


def test_the_csrf_header_on_body_authorises_htmx_posts(owner, service, build):
    """htmx sends the token from <body hx-headers> as X-CSRFToken on every request."""
    import json
    import re

    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    page = client.get(f"/services/{service.id}/jobs/").content.decode()
    headers = json.loads(re.search(r"<body hx-headers='([^']+)'", page).group(1))
    r = client.post(
        url(service),
        {"start_command": "echo", "plan": service.plan_id},
        HTTP_HX_REQUEST="true",
        HTTP_X_CSRFTOKEN=headers["X-CSRFToken"],
    )
    assert r.status_code == 200
    assert Job.objects.count() == 1


def test_the_role_is_the_one_held_in_the_services_workspace(
    owner, other_workspace, service, build, make_service, make_build, login
):
    from services.models import Membership

    Membership.objects.create(workspace=other_workspace, user=owner, role="viewer")
    theirs = make_service(other_workspace, name="theirs")
    make_build(theirs)
    client = login(owner)
    r = client.post(
        f"/services/{theirs.id}/jobs/run/", {"start_command": "x", "plan": theirs.plan_id}
    )
    assert r.status_code == 403
    r = client.post(url(service), {"start_command": "x", "plan": service.plan_id})
    assert r.status_code == 302

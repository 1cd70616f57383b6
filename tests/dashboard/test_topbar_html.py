"""The top bar of every page, written by a Python function (dashboard/templatetags/topbar.py
``render_topbar``), is the HTML base.html's template section wrote
(tests/dashboard/topbar_reference.html), byte for byte, for every reader and page, escaping
included; and the switcher's list of workspaces is still only queried where it is shown."""

import itertools
from functools import cache, partial
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.template import engines
from django.test import RequestFactory
from django.urls import resolve
from django.utils.safestring import mark_safe

from dashboard.context_processors import frame
from services.models import Membership, Role, Service, Workspace

REFERENCE = Path(__file__).with_name("topbar_reference.html").read_text().removesuffix("\n")
BASE = Path(__file__).parents[2] / "templates" / "base.html"
TAG = "{% load topbar %}{% topbar %}"

TABS = [None, "services", "api_keys", "usage", "webhooks", "log_stream", "audit", "hosts", "jobs"]

NAMES = [
    "Acme",
    "<img src=x onerror=alert(1)>",
    "\"Quoted\" & 'single' ops",
    "Zürich Ünïcødé 東京",
    mark_safe("<b>safe</b> &amp; sound"),  # a SafeString passes as it is, as through {{ }}
]


def workspaces() -> list[Workspace]:
    ws = [Workspace(id=f"tea-{i:020d}", name=name) for i, name in enumerate(NAMES)]
    # An id reverse keeps an ampersand and a quote in: {% url %} escapes them.
    ws.append(Workspace(id="tea-a&b'c\"<d>", name="Odd id"))
    return ws


def readers():
    """Signed-in readers: with an email, with only a username, with hostile text in both."""
    yield User(username="alice", email="alice@acme.test")
    yield User(username='bob & <co> "quoted"', email="")
    yield User(username="x", email="eve<script>@evil.test")
    yield User(username="ünï", email="ünï@exämple.test")
    yield User(username="s", email=mark_safe("<i>safe</i>@x.test"))


@cache
def template(source: str):
    return engines["django"].from_string(source)


def both(context: dict, request=None) -> tuple[str, str]:
    reference = template(REFERENCE).render(context, request)
    return template(TAG).render(dict(context), request), reference


def test_signed_out_it_writes_the_templates_bar():
    def unasked():
        raise AssertionError("the switcher's workspaces are not shown")

    ws = workspaces()
    for context in (
        {},
        {"user": AnonymousUser()},
        {"user": AnonymousUser(), "workspace": ws[0], "workspaces": unasked, "tab": "usage"},
    ):
        ours, theirs = both(context)
        assert ours == theirs
        assert "signout" not in ours


@pytest.mark.parametrize("csrf_token", ["tok<en>&\"'", "", None])
def test_signed_in_without_a_workspace_it_writes_the_templates_bar(csrf_token):
    def unasked():
        raise AssertionError("the switcher's workspaces are not shown")

    for user in readers():
        for membership in (None, Membership(user=user, role=Role.VIEWER)):
            context = {"user": user, "workspaces": unasked, "membership": membership}
            if csrf_token:
                context["csrf_token"] = csrf_token
            ours, theirs = both(context)
            assert ours == theirs
            assert "switcher" not in ours
            assert "<script>" not in ours


@pytest.mark.parametrize("lazy", [True, False])
def test_in_a_workspace_it_writes_the_templates_bar(lazy):
    """Every tab, service or none, staff flag and admin flag, in each of the workspaces (the
    hostile names and id among them), the current one marked; the readers and roles in turn."""
    listed = workspaces()
    service = Service(name="web")
    cases = itertools.product(listed, [False, True], [False, True], TABS, [None, service])
    people = itertools.cycle(itertools.product(readers(), [None, *Role.values]))
    count = 0
    for (workspace, staff, is_admin, tab, on_service), (user, role) in zip(
        cases, people, strict=False
    ):
        user.is_staff = staff
        membership = role and Membership(user=user, workspace=workspace, role=role)
        context = {
            "user": user,
            "workspace": workspace,
            "workspaces": (lambda: listed) if lazy else listed,
            "membership": membership,
            "is_admin": is_admin,
            "can_write": True,
            "tab": tab,
            "service": on_service,
            "csrf_token": "t0k",
        }
        ours, theirs = both(context)
        assert ours == theirs, (user.username, workspace.name, role, staff, is_admin, tab)
        assert "<img src=x" not in ours
        assert "<script>" not in ours
        count += 1
    assert count == 6 * 2 * 2 * len(TABS) * 2


def test_it_reverses_in_the_requests_namespace():
    """A page's request gives ``{% url %}`` its namespace (the admin's, a dashboard page's)."""
    ws = workspaces()
    factory = RequestFactory()
    for path in ("/admin/", f"/workspaces/{ws[0].id}/usage/"):
        request = factory.get(path)
        request.resolver_match = resolve(path)
        user = User(username="staff", email="staff@acme.test", is_staff=True)
        context = {"user": user, "workspace": ws[0], "workspaces": ws, "is_admin": True}
        # A token of its own: the request's (the csrf processor's) is masked anew each time.
        context["csrf_token"] = "t"
        ours, theirs = both(context, request)
        assert ours == theirs
        assert 'href="/admin/">Admin</a>' in ours


def test_the_page_frame_is_the_old_one():
    """base.html with the tag writes what base.html with the template section wrote."""
    source = BASE.read_text()
    assert source.count("{% topbar %}") == 1
    new = template(source)
    old = template(source.replace("{% topbar %}", REFERENCE))
    ws = workspaces()
    user = User(username="alice", email="alice@acme.test", is_staff=True)
    for context in (
        {},
        {"user": user, "csrf_token": "t"},
        {"user": user, "workspace": ws[1], "workspaces": ws, "is_admin": True, "tab": "audit"},
    ):
        assert new.render(context) == old.render(context)


@pytest.mark.django_db
def test_the_frames_workspaces_are_queried_once_and_only_for_the_switcher(
    owner, workspace, other_workspace, django_assert_num_queries
):
    Membership.objects.create(workspace=other_workspace, user=owner, role=Role.VIEWER)
    request = RequestFactory().get("/")
    request.user = owner
    request.session = {}
    request.membership = Membership.objects.select_related("workspace").get(
        user=owner, workspace=workspace
    )
    context = {"user": owner, **frame(request)}
    assert isinstance(context["workspaces"], partial)
    with django_assert_num_queries(1):
        ours = template(TAG).render(context)
    assert ours == template(REFERENCE).render(context)
    assert f'aria-current="true">{workspace.name}</a>' in ours
    assert f">{other_workspace.name}</a>" in ours
    # Without the switcher (signed out; no workspace) the list is never asked for.
    for shown in ({**context, "user": AnonymousUser()}, {**context, "workspace": None}):
        with django_assert_num_queries(0):
            template(TAG).render(shown)


def test_the_jobs_page_has_the_switcher_and_the_navigation(
    owner, workspace, other_workspace, service, login
):
    Membership.objects.create(workspace=other_workspace, user=owner, role=Role.VIEWER)
    response = login(owner).get(f"/services/{service.id}/jobs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('<header class="topbar">') == 1
    header = body[body.index('<header class="topbar">') : body.index("</header>") + 9]
    assert '<details class="switcher">' in header
    assert f'<span class="visually-hidden">Workspace: </span>{workspace.name}</summary>' in header
    assert (
        f'<a href="/workspaces/{workspace.id}/" aria-current="true">{workspace.name}</a>' in header
    )
    assert f'<a href="/workspaces/{other_workspace.id}/">{other_workspace.name}</a>' in header
    assert (
        f'<a href="/workspaces/{workspace.id}/" aria-current="page">Services</a>' in header
    )  # a service's page is under Services
    for text in ("API keys", "Usage", "Webhooks", "Log stream", "Audit log"):  # an admin's
        assert f">{text}</a>" in header
    assert ">Hosts</a>" not in header
    assert f'<span class="who">{owner.email} <span class="role">Admin</span></span>' in header
    assert '<form class="signout" method="post" action="/logout/">' in header
    assert '<input type="hidden" name="csrfmiddlewaretoken" value="' in header
    # The same bar as the template's, from the page's own context.
    context = response.context[0] if isinstance(response.context, list) else response.context
    assert header == template(REFERENCE).render(context.flatten())

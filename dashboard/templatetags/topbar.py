"""The top bar of every dashboard page (``{% topbar %}`` in base.html), written by Python.

Through the template engine the bar's 30 lines of tags, ten ``{% url %}``s, a loop and its
conditions were a measurable part of every full page (issue 20: about 170 µs of CPU for an
admin's bar with three workspaces, timed alone; this function takes about 40 µs).
``render_topbar`` writes the same bytes from the same context: the frame of
dashboard/context_processors.py (``workspace``, ``workspaces``, ``membership``, ``is_admin``),
the auth processor's ``user``, the view's ``tab`` and ``service``, and ``csrf_token``. Every
value from data is escaped as ``{{ }}`` escapes it, and the switcher's list (``workspaces``, a
query the frame leaves uncalled) is only asked for where the switcher is shown.
tests/dashboard/test_topbar_html.py renders the template's bar
(tests/dashboard/topbar_reference.html) beside this one for every kind of reader and page.
"""

from collections.abc import Callable
from typing import Any

from django import template
from django.template import Context
from django.template.defaulttags import CsrfTokenNode
from django.utils.safestring import SafeString, mark_safe

from dashboard.templatetags.jobslist import _escape
from dashboard.templatetags.urlcache import reverser

register = template.Library()

CURRENT = ' aria-current="page"'
CHOSEN = ' aria-current="true"'


@register.simple_tag(takes_context=True)
def topbar(context: Context) -> SafeString:
    """What the template's ``<header class="topbar">`` … ``</header>`` wrote."""
    return render_topbar(context)


def _current_app(context: Context):
    """The namespace ``{% url %}`` reverses in (``URLNode.render``)."""
    try:
        return context.request.current_app  # type: ignore[attr-defined]
    except AttributeError:
        try:
            return context.request.resolver_match.namespace  # type: ignore[attr-defined]
        except AttributeError:
            return None


def _value(value):
    """A variable as the template reads it: a callable is called (``Variable._resolve_lookup``);
    the frame's ``workspaces`` is one."""
    if callable(value) and not getattr(value, "do_not_call_in_templates", False):
        return value()
    return value


def render_topbar(context: Context) -> SafeString:
    """The ``<header>``, whitespace included, as the template section wrote it."""
    e = _escape
    reverse = reverser(_current_app(context))

    def url(view_name: str, *args) -> str:
        return e(reverse(view_name, *args))

    bar = (
        f'<header class="topbar">\n  <a class="brand" href="{url("home")}">'
        '<span class="logo" aria-hidden="true">▶</span> Oneoff</a>\n  '
    )
    user: Any = context.get("user")
    if getattr(user, "is_authenticated", False):
        bar += "\n    "
        workspace = context.get("workspace")
        if workspace:
            bar += _workspace_nav(context, user, workspace, url)
        membership = context.get("membership")
        role = (
            f' <span class="role">{e(membership.get_role_display())}</span>' if membership else ""
        )
        bar += (
            f'\n    <form class="signout" method="post" action="{url("logout")}">'
            f"{CsrfTokenNode().render(context)}\n"
            f'      <span class="who">{e(user.email or user.username)}{role}</span>\n'
            '      <button type="submit" class="link">Sign out</button>\n'
            "    </form>\n  "
        )
    return mark_safe(bar + "\n</header>")  # noqa: S308 - every value from data is escaped


def _workspace_nav(context: Context, user, workspace, url: Callable[..., str]) -> str:
    """The workspace switcher and the main navigation, for a page of a workspace."""
    e = _escape
    ws_id = workspace.id
    items = "".join(
        f'\n          <li><a href="{url("services", ws.id)}"'
        f"{CHOSEN if ws.id == ws_id else ''}>{e(ws.name)}</a></li>\n          "
        for ws in _value(context.get("workspaces")) or ()
    )
    tab = context.get("tab")
    is_admin = context.get("is_admin")
    is_staff = getattr(user, "is_staff", False)
    log_stream = audit = hosts = admin = ""
    if is_admin:
        log_stream = (
            f'<a href="/settings/log-stream/?workspace={e(ws_id)}"'
            f"{CURRENT if tab == 'log_stream' else ''}>Log stream</a>"
        )
        audit = (
            f'<a href="{url("audit_log", ws_id)}"{CURRENT if tab == "audit" else ""}>Audit log</a>'
        )
    if is_staff:
        hosts = f'<a href="{url("hosts")}"{CURRENT if tab == "hosts" else ""}>Hosts</a>'
        admin = f'<a href="{url("admin:index")}">Admin</a>'
    return (
        '\n    <details class="switcher">\n'
        f'      <summary><span class="visually-hidden">Workspace: </span>{e(workspace.name)}'
        "</summary>\n"
        '      <nav aria-label="Workspaces">\n'
        f"        <ul>\n          {items}\n        </ul>\n"
        "      </nav>\n"
        "    </details>\n"
        '    <nav class="mainnav" aria-label="Main">\n'
        f'      <a href="{url("services", ws_id)}"'
        f"{CURRENT if tab == 'services' or context.get('service') else ''}>Services</a>\n"
        f'      <a href="{url("api_keys", ws_id)}"{CURRENT if tab == "api_keys" else ""}>'
        "API keys</a>\n"
        f'      <a href="{url("usage", ws_id)}"{CURRENT if tab == "usage" else ""}>Usage</a>\n'
        f'      <a href="{url("webhooks", ws_id)}"{CURRENT if tab == "webhooks" else ""}>'
        "Webhooks</a>\n"
        f"      {log_stream}\n"
        f"      {audit}\n"
        f"      {hosts}\n"
        f"      {admin}\n"
        "    </nav>\n    "
    )

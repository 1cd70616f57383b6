"""The form renderer (``FORM_RENDERER``): Django's, but the plain widgets are written by Python.

Django draws every widget through its template (``django/forms/widgets/*.html``): an input is
four templates deep (its type's, ``input.html``, ``attrs.html``), a ``<select>`` one more for
each option. The Jobs page's run form spent about 1.5 ms there, the plan select alone about
0.9 ms (issue 20). The writers below produce the same HTML, byte for byte, from the same widget
context Django builds (``Widget.get_context``: its attrs, formatted value and options), and every
value is escaped as ``{{ }}`` escapes it. Any other template (a radio list, an option with a
template of its own, optgroups, the form layouts, the admin's widgets) still goes through
Django. tests/dashboard/test_form_renderer.py renders each widget both ways.
"""

import html
from collections.abc import Callable

from django.forms.renderers import DjangoTemplates

WIDGETS = "django/forms/widgets/"
OPTION = WIDGETS + "select_option.html"


def _text(value) -> str:
    """What ``{{ value }}`` writes (``conditional_escape``), without its check for lazy strings."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def _attrs(attrs: dict) -> str:
    """``attrs.html``: ``name="value"`` for each, the name alone for True, nothing for False."""
    out = []
    for name, value in attrs.items():
        if value is False:
            continue
        out.append(f" {_text(name)}" if value is True else f' {_text(name)}="{_text(value)}"')
    return "".join(out)


def _input(widget: dict) -> str:
    """``input.html``, as each input type's template includes it (the renderer strips what
    follows it)."""
    value = widget["value"]
    shown = "" if value is None else f' value="{_text(value)}"'
    return (
        f'<input type="{_text(widget["type"])}" name="{_text(widget["name"])}"{shown}'
        f"{_attrs(widget['attrs'])}>"
    )


def _textarea(widget: dict) -> str:
    value = widget["value"]
    return (
        f'<textarea name="{_text(widget["name"])}"{_attrs(widget["attrs"])}>\n'
        f"{_text(value) if value else ''}</textarea>"
    )


def _select(widget: dict) -> str | None:
    """``select.html`` without optgroups, its options by ``select_option.html`` (a newline after
    each: the select includes the option's template); None for anything else."""
    options = []
    for group_name, group_choices, _ in widget["optgroups"]:
        if group_name:
            return None
        for option in group_choices:
            if option["template_name"] != OPTION:
                return None
            options.append(
                f'\n  <option value="{_text(option["value"])}"{_attrs(option["attrs"])}>'
                f"{_text(option['label'])}</option>\n"
            )
    name, attrs = _text(widget["name"]), _attrs(widget["attrs"])
    return f'<select name="{name}"{attrs}>{"".join(options)}\n</select>'


# Input types whose template is ``{% include "django/forms/widgets/input.html" %}`` and a newline.
_INPUTS = ("text", "number", "hidden", "email", "password", "url", "search", "date", "tel")
_WRITERS: dict[str, Callable[[dict], str | None]] = {
    **{f"{WIDGETS}{kind}.html": _input for kind in _INPUTS},
    WIDGETS + "textarea.html": _textarea,
    WIDGETS + "select.html": _select,
}


class Renderer(DjangoTemplates):
    """Django's template renderer but for the widgets ``_WRITERS`` writes."""

    def render(self, template_name, context, request=None):
        write = _WRITERS.get(template_name)
        written = write(context["widget"]) if write is not None and "widget" in context else None
        if written is None:
            return super().render(template_name, context, request)
        return written

"""The form renderer (dashboard.forms.renderer) writes each plain widget as Django's templates
do, byte for byte, hostile values included; other widgets still go through the templates."""

import pytest
from django import forms
from django.conf import settings
from django.forms.renderers import DjangoTemplates, get_default_renderer
from django.utils.safestring import mark_safe

from dashboard.forms.renderer import Renderer

HOSTILE = "<img src=x onerror=alert(1)> & \"q\" 'single' ünï —"
DJANGO, OURS = DjangoTemplates(), Renderer()

WIDGETS = [
    forms.TextInput(attrs={"placeholder": HOSTILE, "autocomplete": "off", "autofocus": True}),
    forms.TextInput(attrs={"required": False, "data-zero": 0, HOSTILE: "name"}),
    forms.NumberInput(attrs={"placeholder": "none", "min": 1}),
    forms.HiddenInput(),
    forms.EmailInput(attrs={"maxlength": 254}),
    forms.PasswordInput(render_value=True),
    forms.URLInput(),
    forms.DateInput(),
    forms.Textarea(attrs={"rows": 2, "placeholder": HOSTILE}),
    forms.Select(choices=[("a", "A — 1 CPU"), (HOSTILE, HOSTILE), ("c", mark_safe("<b>C</b>"))]),
    forms.Select(choices=[(1, "one"), (2, "two")], attrs={"aria-invalid": "true"}),
    forms.Select(choices=[]),
]
VALUES = [None, "", "plain", HOSTILE, 0, 42, "c", mark_safe("<i>safe</i>"), "line\nbreak"]


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda w: type(w).__name__)
def test_each_widget_is_written_as_its_template_writes_it(widget):
    for value in VALUES:
        ours = widget.render("field", value, attrs={"id": "id_field"}, renderer=OURS)
        theirs = widget.render("field", value, attrs={"id": "id_field"}, renderer=DJANGO)
        assert ours == theirs, value
    assert "<img" not in widget.render("f", HOSTILE, renderer=OURS)


def test_widgets_it_does_not_write_go_through_the_templates():
    grouped = forms.Select(choices=[("Group <g>", [("a", "A"), ("b", "B")]), ("c", "C")])
    others = [
        grouped,
        forms.RadioSelect(choices=[("a", HOSTILE)]),
        forms.CheckboxInput(),
        forms.SelectMultiple(choices=[("a", "A")]),
        forms.ClearableFileInput(),
    ]
    for widget in others:
        for value in (None, "a", HOSTILE):
            ours = widget.render("field", value, renderer=OURS)
            assert ours == widget.render("field", value, renderer=DJANGO)


def test_the_dashboards_forms_use_it(owner):
    assert settings.FORM_RENDERER == "dashboard.forms.renderer.Renderer"
    assert isinstance(get_default_renderer(), Renderer)


@pytest.mark.parametrize(
    "data",
    [None, {"start_command": HOSTILE, "plan": HOSTILE, "timeout_seconds": "x", "rerun_of": "?"}],
    ids=["unbound", "with errors"],
)
def test_the_run_form_is_the_html_django_writes(service, data):
    from dashboard.forms.jobs import RunJobForm

    ours = RunJobForm(data, service=service)
    theirs = RunJobForm(data, service=service, renderer=DJANGO)
    if data:
        assert not ours.is_valid()
        assert not theirs.is_valid()
    for name in ours.fields:
        assert str(ours[name]) == str(theirs[name]), name
    assert "<img" not in "".join(str(ours[name]) for name in ours.fields)

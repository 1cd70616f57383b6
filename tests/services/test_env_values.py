"""The env value rule (no control characters but tab, newline and carriage return) and the
scrubbing of env values out of engine and git errors."""

import pytest
from django.core.exceptions import ValidationError

from services.models import EnvVar


@pytest.mark.parametrize("value", ["", "plain", "multi\nline\r\n", "tab\there", "ünïcode ✓"])
def test_ordinary_values_are_allowed(value):
    assert EnvVar.value_problem(value) == ""


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x1f", "\x7f"])
def test_control_characters_are_refused(char):
    problem = EnvVar.value_problem(f"a{char}b")
    assert f"U+{ord(char):04X}" in problem


def test_model_validation_names_the_key(service):
    with pytest.raises(ValidationError) as caught:
        EnvVar(service=service, key="API_TOKEN", value="x\x1by").full_clean()
    assert "API_TOKEN" in str(caught.value.message_dict["value"])


def test_scrub_hides_values_raw_and_as_the_engine_quotes_them():
    values = ["sec\x00retvalue", 'say "hi"\tnow', "abc", "longer-secret", "secret"]
    text = (
        'error: "K=sec\\x00retvalue": unknown; Q=say \\"hi\\"\\tnow; '
        "short abc; longer-secret; secret"
    )
    assert EnvVar.scrub(text, values) == 'error: "K=****": unknown; Q=****; short abc; ****; ****'

"""``{% url %}`` with its answers remembered (dashboard/templatetags/urlcache.py): the URL Django's
tag writes, whatever the URL configuration, script prefix or arguments of the moment."""

import sys
import types

import pytest
from django.template import Context, Engine, engines
from django.urls import NoReverseMatch, path, set_script_prefix

from dashboard.templatetags import urlcache

DJANGO = Engine()  # the stock {% url %}
OURS = engines["django"]


def both(source: str, **values) -> tuple[str, str]:
    return (
        OURS.from_string(source).render(values),
        DJANGO.from_string(source).render(Context(values)),
    )


@pytest.mark.parametrize(
    "source",
    [
        "{% url 'jobs' sid %}",
        "{% url 'job' sid jid %}",
        "{% url 'job' service_id=sid job_id=jid %}",
        "{% url 'job' sid odd %}",
        "{% url 'job' sid 42 %}",
        "{% url 'job' sid jid as link %}[{{ link }}]",
        "{% url 'no-such-view' sid as link %}[{{ link }}]",
        "{% url view sid %}",
    ],
)
def test_it_writes_what_djangos_tag_writes(source):
    values = {"sid": "srv-abc", "jid": "job-1", "odd": 'a b&<c>"ü?#%', "view": "jobs"}
    for _ in range(2):  # the second time from the cache
        ours, theirs = both(source, **values)
        assert ours == theirs


def test_a_url_that_does_not_reverse_still_raises():
    with pytest.raises(NoReverseMatch):
        OURS.from_string("{% url 'no-such-view' 'x' %}").render({})


def test_the_cache_keys_on_the_script_prefix_and_the_url_configuration(settings):
    template = OURS.from_string("{% url 'jobs' 'srv-abc' %}")
    plain = template.render({})
    set_script_prefix("/under/")
    try:
        assert template.render({}) == "/under/" + plain.lstrip("/")
    finally:
        set_script_prefix("/")
    other = types.ModuleType("other_urls")
    other.urlpatterns = [path("elsewhere/<str:service_id>/", lambda r: None, name="jobs")]
    sys.modules[other.__name__] = other
    try:
        settings.ROOT_URLCONF = other.__name__
        assert template.render({}) == "/elsewhere/srv-abc/"
    finally:
        del sys.modules[other.__name__]
    settings.ROOT_URLCONF = "config.urls"
    assert template.render({}) == plain


def test_an_object_argument_is_not_remembered(service):
    """An object's text may change (a name): only plain strings and integers are kept."""
    urlcache._reversed.cache_clear()
    before = urlcache._reversed.cache_info().currsize
    OURS.from_string("{% url 'jobs' s.id %}").render({"s": service})
    assert urlcache._reversed.cache_info().currsize == before + 1
    assert (
        OURS.from_string("{% url 'jobs' s %}").render({"s": service})
        == f"/services/{service}/jobs/"
    )
    assert urlcache._reversed.cache_info().currsize == before + 1


@pytest.mark.parametrize("current_app", [None, "", "admin"])
def test_a_renders_reverser_writes_what_reverse_writes(service, current_app):
    """``reverser``: the remembered URLs of one render (the top bar's), the same entries of the
    same cache; an object argument goes through ``reverse``."""
    from django.urls import reverse

    url = urlcache.reverser(current_app)
    for view_name, args in (
        ("home", ()),
        ("admin:index", ()),
        ("jobs", ("srv-abc",)),
        ("job", ("srv-abc", 'a b&<c>"ü?#%')),
        ("jobs", (service,)),
    ):
        expected = reverse(view_name, args=args)
        assert url(view_name, *args) == expected
        assert urlcache.cached_reverse(view_name, list(args), {}, None) == expected
    set_script_prefix("/under/")
    try:
        assert urlcache.reverser(current_app)("home") == "/under/"
    finally:
        set_script_prefix("/")

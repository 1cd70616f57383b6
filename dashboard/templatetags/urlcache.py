"""``{% url %}`` with its answers remembered (a template builtin: settings.TEMPLATES).

A reverse costs 30 to 50 µs, and a dashboard page makes about 20 of them for links that are the
same on every request (the top bar, the service's tabs, the forms' actions): about a millisecond
of each page (issue 20). This tag is Django's, but a URL whose view name and arguments are plain
strings and integers is kept in a bounded LRU, keyed by everything ``reverse`` reads besides
them: the request's URL configuration, the root one, the script prefix and the language. A URL
is a function of those alone, so no reader can see a URL another reader's values made that their
own would not make. Anything else (an object as an argument, a failed reverse) goes through
``reverse`` as before.
"""

from collections.abc import Callable
from functools import lru_cache

from django import template
from django.conf import settings
from django.template import defaulttags
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString
from django.utils.translation import get_language

register = template.Library()

# A template's string literals are SafeStrings; a lazy string is no str at all.
_PLAIN = (str, SafeString, int)


@lru_cache(maxsize=4096)
def _reversed(view_name, args, kwargs, current_app, urlconf, root, prefix, language) -> str:
    return reverse(view_name, args=args, kwargs=dict(kwargs), current_app=current_app)


def cached_reverse(view_name, args, kwargs, current_app) -> str:
    values = (view_name, *args, *kwargs.values())
    if current_app is not None and not isinstance(current_app, str):
        return reverse(view_name, args=args, kwargs=kwargs, current_app=current_app)
    if not all(type(value) in _PLAIN for value in values):
        return reverse(view_name, args=args, kwargs=kwargs, current_app=current_app)
    return _reversed(
        view_name,
        tuple(args),
        tuple(sorted(kwargs.items())),
        current_app,
        get_urlconf(),
        settings.ROOT_URLCONF,
        get_script_prefix(),
        get_language(),
    )


def reverser(current_app) -> Callable[..., str]:
    """``cached_reverse(view_name, args, {}, current_app)`` for the several URLs one render
    writes (the top bar's ten): what the key reads besides the view name and the arguments (four
    lookups of a context-local value or a setting, most of a remembered URL's cost) is read
    once, and a URL is the same entry of the same cache."""
    if current_app is not None and not isinstance(current_app, str):
        return lambda view_name, *args: reverse(view_name, args=args, current_app=current_app)
    key = (current_app, get_urlconf(), settings.ROOT_URLCONF, get_script_prefix(), get_language())

    def url(view_name, *args) -> str:
        if type(view_name) in _PLAIN and all(type(value) in _PLAIN for value in args):
            return _reversed(view_name, args, (), *key)
        return reverse(view_name, args=args, current_app=current_app)

    return url


class CachedURLNode(defaulttags.URLNode):
    def render(self, context):
        from django.urls import NoReverseMatch

        args = [arg.resolve(context) for arg in self.args]
        kwargs = {k: v.resolve(context) for k, v in self.kwargs.items()}
        view_name = self.view_name.resolve(context)
        try:
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        url = ""
        try:
            url = cached_reverse(view_name, args, kwargs, current_app)
        except NoReverseMatch:
            if self.asvar is None:
                raise
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


@register.tag
def url(parser, token):
    """Django's ``{% url %}`` (same syntax, same errors), its answers remembered."""
    node = defaulttags.url(parser, token)
    node.__class__ = CachedURLNode
    return node

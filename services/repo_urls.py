"""Credentials in git repository URLs (``https://user:token@host/…``).

A service or build stores its URL without the user info and the credential apart, encrypted
(``repo_credential``). Every output shows ``https://***@host/…`` instead; only git gets the
credential back, through a credential helper that reads it from its environment.
"""

from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Schemes whose user info is a credential for git's credential helpers (an ssh URL's user is a
# login name, which ssh needs in the URL and which is no secret).
CREDENTIAL_SCHEMES = ("http", "https")


def split_credential(url: str) -> tuple[str, str]:
    """``(url without its user info, the user info)`` for an http(s) URL; others unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, ""
    if parts.scheme.lower() not in CREDENTIAL_SCHEMES or "@" not in parts.netloc:
        return url, ""
    credential, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=host)), credential


def shown_url(url: str, credential: str) -> str:
    """The URL as outputs show it: ``https://***@host/…`` when a credential is set."""
    if not credential or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{MASK}@{rest}"

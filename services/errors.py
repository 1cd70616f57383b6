"""The domain's error vocabulary: what can go wrong, said once, for every face to answer.

Domain code (``jobs.launch``, ``services.builds``, ``services.access``, ``logstreams``) raises
these and never an HTTP status; each face maps them in one place: the API in ``api.errors``
(``Invalid`` and ``Refused`` a 400, ``OverBudget`` a 402, ``Forbidden`` a 403, ``NotFound`` a
404, ``Limited`` a 429 with ``Retry-After``, as ``{"id", "message"}``), the dashboard in
``dashboard.middleware``. A module may subclass one to name its own case
(``services.builds.CancelRefused``); a face catches the vocabulary, not the subclass.
"""


class DomainError(Exception):
    """Something the user can act on; ``message`` says what, in words fit to show."""

    field: str | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """A bad input: ``field`` names it as the API spells it (``startCommand``, ``endpoint``),
    ``message`` says what is wrong with it (``must not be empty``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Refused(DomainError):
    """An action the object's state does not allow (cancel a finished job, run jobs on a
    service without a successful build)."""


class Limited(DomainError):
    """Too many of something in a period (a rate limit, ``services.limits``; key creations,
    ``services.apikeys``): ``retry_after`` seconds until the next one may be allowed."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class OverBudget(DomainError):
    """A job the workspace's monthly budget has no room for (``jobs.budget``). Not ``Refused``:
    the API answers it with its own status (402), so a script tells "out of money" from a bad
    request without reading the message."""


class Forbidden(DomainError):
    """An action the member's role does not allow (``services.access.check_role``)."""


class NotFound(DomainError):
    """No such object, or one of a workspace the reader cannot see: the two are never told
    apart."""

    def __init__(self, what: str):
        super().__init__(f"{what} not found")
        self.what = what

"""The two reads every signed-in request makes before its view runs, compiled once (issue 20).

Django's database session store and ``ModelBackend`` each build a queryset and compile it to
SQL on every request: about 0.15 ms of Python a read, for the session row and the user row, on
every page and every poll of the dashboard. Here both go through ``services.prepared``: the SQL
is compiled once a process and PostgreSQL reuses its plan. What they return, and every check
around them (the session's expiry, ``is_active``, the session hash of ``django.contrib.auth``),
is Django's own; on SQLite they are the ordinary querysets.

``SESSION_ENGINE = "config.sessions"`` and ``config.sessions.ModelBackend`` in
``AUTHENTICATION_BACKENDS``, in place of Django's. A session remembers the path of the backend
that signed it in; one signed in by Django's ``ModelBackend`` is read as signed in by this one,
which differs only in how it reads the row, so no one is signed out by the change.
"""

import logging

from django.contrib.auth import BACKEND_SESSION_KEY, backends, get_user_model
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.utils import timezone

from services.prepared import Prepared

_SESSION = Prepared(
    lambda shape, *, key, now: Session.objects.filter(session_key=key, expire_date__gt=now)
)
_USER = Prepared(lambda shape, *, pk: get_user_model()._default_manager.filter(pk=pk))


DJANGOS_BACKEND = "django.contrib.auth.backends.ModelBackend"
OUR_BACKEND = "config.sessions.ModelBackend"


class SessionStore(db.SessionStore):
    def load(self) -> dict:
        data = super().load()
        if data.get(BACKEND_SESSION_KEY) == DJANGOS_BACKEND:
            data[BACKEND_SESSION_KEY] = OUR_BACKEND
        return data

    def _get_session_from_db(self) -> Session | None:
        key = self.session_key
        try:
            if not isinstance(key, str) or not key:
                raise Session.DoesNotExist
            found = _SESSION.run(key=key, now=timezone.now())
            if not found:
                raise Session.DoesNotExist
            return found[0]
        except (Session.DoesNotExist, SuspiciousOperation) as error:
            if isinstance(error, SuspiciousOperation):
                logger = logging.getLogger(f"django.security.{error.__class__.__name__}")
                logger.warning(str(error))
            self._session_key = None
            return None


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        try:
            pk = get_user_model()._meta.pk.to_python(user_id)
        except ValidationError:  # a session's id that is no id is no user
            return None
        found = _USER.run(pk=pk)
        if not found:
            return None
        user = found[0]
        return user if self.user_can_authenticate(user) else None

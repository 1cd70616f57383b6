"""The hottest queries, compiled once: the ORM writes a query's SQL the first time a process runs
its shape, and every later run only binds new values (issue 20).

Building a queryset and compiling it to SQL cost the API's list request about 1-2 ms a query in
Python, and PostgreSQL spent as long again planning the joins (0.7 ms for one job with its four
joined rows, 1.7 ms for a page) to run them in 0.1-0.3 ms. A ``Prepared`` query keeps, per shape
(what changes the SQL: a page's size, how many statuses it filters on, whether it has a cursor),
the SQL and the compiler's description of its columns; a run sends that SQL with the values and
builds the model instances as the ORM does (``select_related`` rows, deferred fields,
annotations, the fields' own conversions). On PostgreSQL it binds the values on the server, so
psycopg prepares the statement after ``prepare_threshold`` runs on a connection (``DATABASES``
``OPTIONS``; Oneoff's default 5, ``DB_PREPARE_THRESHOLD``) and PostgreSQL can reuse its plan. On
any other database (the embedded SQLite), and while ``enabled`` is off, it is the ordinary
queryset.

``build(shape, **values)`` makes the queryset. The first run of a shape calls it with markers
instead of the values (unique strings, integers near 2,000,000,000, datetimes far in the past,
lists of them), finds each marker among the compiled parameters, and refuses a queryset whose
lookup changed a value (``icontains`` wraps it in ``%``): such a query must stay an ordinary
queryset. Only ``str``, ``int`` and ``datetime`` values, and lists of them, can be bound;
anything else (a ``LIMIT``, a flag) belongs in the shape, which ``build`` reads.
"""

import threading
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import (  # type: ignore[attr-defined]
    ModelIterable,
    _get_from_db,
    get_related_populators,
)

# Shapes kept per query and database alias; a process that met more starts over (a bound, not a
# cache policy: a query has a handful of shapes).
MAX_SHAPES = 256
MARKER_EPOCH = datetime(1001, 1, 1, tzinfo=UTC)

enabled = True


class _Compiled:
    """One shape's SQL, where each value goes in its parameters, and how to build the rows."""

    def __init__(
        self,
        queryset: QuerySet,
        markers: dict[str, Any],
        alias: str,
    ):
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        where: dict[Any, tuple[str, int | None]] = {}
        for name, marker in markers.items():
            if isinstance(marker, list):
                for index, item in enumerate(marker):
                    where[item] = (name, index)
            else:
                where[marker] = (name, None)
        self.slots: list[tuple[str, int | None] | tuple[None, Any]] = []
        for param in params:
            bindable = isinstance(param, (str, int, datetime)) and not isinstance(param, bool)
            slot = where.get(param) if bindable else None
            self.slots.append(slot if slot is not None else (None, param))
        used = {slot for slot in self.slots if slot[0] is not None}
        if len(used) != len(where):
            raise ValueError(
                f"{queryset.model.__name__}: a value did not reach the SQL unchanged; "
                "leave this query an ordinary queryset"
            )
        self.sql = sql
        self.compiler = compiler
        columns = [column[0] for column in compiler.select[0 : compiler.col_count]]
        assert not compiler.has_composite_fields(columns), "no composite keys here"
        self.converters = compiler.get_converters(columns)
        if queryset._iterable_class is not ModelIterable:
            return  # a values_list() queryset: rows as tuples (Prepared.rows)
        klass_info = compiler.klass_info
        assert klass_info is not None, "a Prepared query selects model instances or values"
        self.fetch_mode = queryset._fetch_mode  # type: ignore[attr-defined]
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in compiler.select[self.start : self.end]]
        self.annotations = dict(compiler.annotation_col_map or {})
        self.populators = get_related_populators(
            klass_info, compiler.select, alias, self.fetch_mode
        )
        self.from_db = _get_from_db(self.model, self.fetch_mode)

    def params(self, values: dict[str, Any]) -> list:
        bound = []
        for name, extra in self.slots:  # (None, a constant) or (name, index in a list or None)
            if name is None:
                bound.append(extra)
            else:
                bound.append(values[name] if extra is None else values[name][extra])
        return bound

    def tuples(self, rows: list) -> list[tuple]:
        if not self.converters:
            return rows
        return [tuple(row) for row in self.compiler.apply_converters(rows, self.converters)]

    def objects(self, rows: list, alias: str) -> list[Model]:
        found = []
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        for row in rows:
            obj = self.from_db(alias, self.init_list, row[self.start : self.end])
            for populator in self.populators:
                populator.populate(row, obj)
            for name, position in self.annotations.items():
                setattr(obj, name, row[position])
            found.append(obj)
        return found


def _marker(name: str, value: Any, index: int) -> Any:
    if isinstance(value, str):
        return f"\x1fprepared:{name}:{index}\x1f"
    if isinstance(value, datetime):
        return MARKER_EPOCH + timedelta(microseconds=index + 1)
    if isinstance(value, int) and not isinstance(value, bool):
        # Within the range of every integer column, 32-bit and positive ones included: Django
        # compiles a value out of a column's range to no query at all (``EmptyResultSet``).
        return 2_000_000_000 + index
    if isinstance(value, (list, tuple)):
        return [_marker(name, item, index * 1000 + n) for n, item in enumerate(value)]
    raise TypeError(f"{name}: only str, int, datetime and lists of them can be bound")


class Prepared[M: Model]:
    """A query whose SQL is compiled once per shape (see the module's docstring)."""

    def __init__(self, build: Callable[..., QuerySet[M]], *, prepare: bool = True):
        self.build = build
        # False: the SQL is still compiled once, but sent with its values inlined (PostgreSQL
        # plans each run for its values): for a query whose generic plan is bad.
        self.prepare = prepare
        self._compiled: dict[tuple[str, Hashable], _Compiled] = {}
        self._lock = threading.Lock()

    def run(self, shape: Hashable = (), *, using: str = "default", **values: Any) -> list[M]:
        """The model instances the queryset of ``shape`` and ``values`` would give."""
        connection = connections[using]
        if not enabled or connection.vendor != "postgresql":
            return list(self.build(shape, **values))
        compiled = self._compile(shape, using, values)
        return compiled.objects(self._execute(connection, compiled, values), using)  # type: ignore[return-value]

    def rows(self, shape: Hashable = (), *, using: str = "default", **values: Any) -> list[tuple]:
        """The rows, as tuples, of the ``values_list()`` queryset of ``shape`` and ``values``:
        for many light rows (a page of log lines), without the ORM's iterators."""
        connection = connections[using]
        if not enabled or connection.vendor != "postgresql":
            rows: Iterable[Any] = self.build(shape, **values)
            return [tuple(row) for row in rows]
        compiled = self._compile(shape, using, values)
        return compiled.tuples(self._execute(connection, compiled, values))

    def _compile(self, shape: Hashable, using: str, values: dict) -> _Compiled:
        compiled = self._compiled.get((using, shape))
        if compiled is None:
            markers = {
                name: _marker(name, value, n) for n, (name, value) in enumerate(values.items())
            }
            compiled = _Compiled(self.build(shape, **markers), markers, using)
            with self._lock:
                if len(self._compiled) >= MAX_SHAPES:
                    self._compiled.clear()
                self._compiled[(using, shape)] = compiled
        return compiled

    def _execute(self, connection: Any, compiled: _Compiled, values: dict) -> list:
        return fetch(connection, compiled.sql, compiled.params(values), prepare=self.prepare)


def fetch(connection: Any, sql: str, params: list, *, prepare: bool = True) -> list[tuple]:
    """The rows of ``sql`` with ``params`` on a PostgreSQL ``connection``; with ``prepare``,
    bound on the server, so psycopg prepares the statement after ``prepare_threshold`` runs."""
    with connection.cursor() as cursor:
        if prepare:
            # Django's wrapper (query logging, execute_wrapper hooks, error translation)
            # around a cursor that binds on the server, which lets psycopg prepare it.
            client_side, cursor.cursor = cursor.cursor, _server_binding_cursor(connection)
            client_side.close()
        cursor.execute(sql, params)
        return cursor.fetchall()


def _server_binding_cursor(connection: Any) -> Any:
    """A cursor of ``connection`` that binds values on the server, set up as Django sets up its
    own (the connection's time zone for timestamptz values)."""
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, ServerBindingCursor
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    raw = connection.connection
    cursor = ServerBindingCursor(raw)  # type: ignore[call-arg]
    if connection.timezone != raw.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
        register_tzloader(connection.timezone, cursor)
    return cursor

"""What the benchmarks share: their own PostgreSQL database, a service to run on, percentiles,
bulk-made jobs."""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def server_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return url


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def admin_sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def with_own_database(name: str, run):
    """Point DATABASE_URL at a fresh database ``name`` on the server of DATABASE_URL, call
    ``run()``, and drop the database afterwards whatever happened. ``BENCH_DB_SUFFIX`` is appended
    to the name, so runs from two checkouts on one server do not drop each other's database."""
    name += os.environ.get("BENCH_DB_SUFFIX", "")
    server = server_url()
    os.environ["DATABASE_URL"] = with_db(server, name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    try:
        return run()
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bench_service(image_id: str = "sha256:" + "0" * 64, *, admin_email: str = "", **workspace):
    """A workspace with one web service on plan-srv-006 and a succeeded build of ``image_id``;
    with ``admin_email``, an admin user too. Returns (workspace, service, build, user or None)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from services.models import Build, Membership, Role, Service, Workspace

    workspace_row = Workspace.objects.create(**{"name": "Bench", **workspace})
    user = None
    if admin_email:
        user = get_user_model().objects.create_user(admin_email, admin_email)
        Membership.objects.create(workspace=workspace_row, user=user, role=Role.ADMIN)
    service = Service.objects.create(
        workspace=workspace_row,
        name="bench",
        type="web_service",
        plan_id="plan-srv-006",
        image_ref="bench:1",
    )
    now = timezone.now()
    build = Build.objects.create(
        service=service, status="succeeded", image_id=image_id, started_at=now, finished_at=now
    )
    return workspace_row, service, build, user


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def insert_jobs(service, build, snapshot, count: int, first: int = 1) -> None:
    """Bulk-insert ``count`` jobs, one a second, 10% failed, 10% canceled, 1% running, the
    rest succeeded; ids sort like created_at (``job-`` + 20 hex digits). ``first``: the number
    of the first (more jobs after earlier ones: ``first`` is one past the last)."""
    from django.db import connection

    from jobs.models import Job

    explicit = {
        "id": "'job-' || lpad(to_hex(i), 20, '0')",
        "workspace_id": "%(workspace)s",
        "service_id": "%(service)s",
        "start_command": "'python manage.py task ' || i",
        "plan_id": "%(plan)s",
        "build_id": "%(build)s",
        "env_snapshot_id": "%(snapshot)s",
        "status": (
            "CASE WHEN i %% 100 = 0 THEN 'running' WHEN i %% 10 = 1 THEN 'failed' "
            "WHEN i %% 10 = 2 THEN 'canceled' ELSE 'succeeded' END"
        ),
        "created_at": "%(t0)s::timestamptz + i * interval '1 second'",
        "started_at": "%(t0)s::timestamptz + i * interval '1 second' + interval '2 seconds'",
        "finished_at": (
            "CASE WHEN i %% 100 = 0 THEN NULL "
            "ELSE %(t0)s::timestamptz + i * interval '1 second' + interval '9 seconds' END"
        ),
        "exit_code": "CASE WHEN i %% 10 = 1 THEN 1 WHEN i %% 100 = 0 THEN NULL ELSE 0 END",
        "billed_seconds": "CASE WHEN i %% 100 = 0 THEN NULL ELSE 7 END",
        "cost": "CASE WHEN i %% 100 = 0 THEN NULL ELSE 0.000019 END",
    }
    params = {
        "workspace": service.workspace_id,
        "service": service.id,
        "plan": service.plan_id,
        "build": build.id,
        "snapshot": snapshot.id,
        "t0": "2026-01-01T00:00:00+00:00",
        "first": first,
        "last": first + count - 1,
    }
    columns, values = [], []
    # Every other NOT NULL column gets its model default, so new fields need no change here.
    for field in Job._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.column in explicit:
            values.append(explicit[field.column])
        elif field.null and not field.has_default():
            values.append("NULL")
        else:
            key = f"default_{field.column}"
            params[key] = field.get_db_prep_save(field.get_default(), connection)
            values.append(f"%({key})s")
    sql = (
        f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(%(first)s, %(last)s) AS i"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        vacuum(cursor, Job._meta.db_table)


def vacuum(cursor, table: str) -> None:
    """What autovacuum does to a table after a bulk insert (PostgreSQL 13 and later vacuum on
    inserts too): statistics, and the visibility map set, so index-only scans read no heap. Left
    at ``ANALYZE`` alone, the Jobs page's chip counts did 200 heap fetches per status (4 ms
    against 1.3 ms), a state a real installation is not in for long."""
    cursor.execute(f"VACUUM (ANALYZE) {table}")


# Long-lived processes whose CPU a run's breakdown shows; a process's exited children count
# through its own cutime/cstime (PostgreSQL's backends through the postmaster).
CPU_PARTS = {"postgres": "PostgreSQL", "dockerd": "dockerd", "containerd": "containerd"}


def cpu_seconds(pids: dict[str, int] | None = None) -> dict[str, float]:
    """CPU seconds (user + system, children waited for included) used so far, by part: the
    processes named in CPU_PARTS, plus ``pids`` (a name for each pid, e.g. the worker's)."""
    tick = os.sysconf("SC_CLK_TCK")
    named = {pid: name for name, pid in (pids or {}).items()}
    totals: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        part = named.get(int(entry)) or CPU_PARTS.get(comm)
        if part is None:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        used = sum(int(value) for value in fields[11:15]) / tick
        totals[part] = totals.get(part, 0.0) + used
    return totals


def cpu_used(before: dict[str, float], after: dict[str, float]) -> str:
    """``part 1.2 s, …`` for what each part used between two ``cpu_seconds`` readings."""
    return ", ".join(
        f"{part} {after[part] - before.get(part, 0.0):.1f} s" for part in sorted(after)
    )

"""Who may see and do what: the one ownership module, used by the API and the dashboard alike.

Every lookup is scoped, so isolation is written once: an object of another workspace is exactly
like a missing one (``NotFound``, never a hint that it exists). ``check_role`` turns the role rule
(``Role.can_write``, ``Role.can_administer``) into a ``Forbidden``. The API scopes by its key's
workspace (``service_in``), the dashboard by the reader's memberships (``service_for``); below a
service, both use ``job_of`` and ``build_of``.
"""

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import F, Model, QuerySet

from services.errors import Forbidden, NotFound
from services.models import Build, RegistryCredential, Role, Service, Workspace

READ, WRITE, ADMIN = "read", "write", "admin"


def check_role(role: str, need: str = READ) -> None:
    """``Forbidden`` unless ``role`` may do what ``need`` asks: ``READ``, ``WRITE`` (run and
    cancel jobs, build) or ``ADMIN`` (services, env vars, log streams, others' keys)."""
    if need in (WRITE, ADMIN) and not Role.can_write(role):
        raise Forbidden("viewers cannot change anything in this workspace")
    if need == ADMIN and not Role.can_administer(role):
        raise Forbidden("only workspace admins can do this")


def _one[M: Model](queryset: QuerySet[M], pk: str, what: str) -> M:
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise NotFound(what)
    return found


def service_in(workspace: Workspace, service_id: str, *, deleted: bool = False) -> Service:
    """A service of ``workspace``, with its plan, workspace and registry credential's name
    loaded (not its token, which is decrypted only for a pull). A deleted service is a 404
    unless ``deleted`` (reading its jobs by id, which stay readable)."""
    manager = Service.all_objects if deleted else Service.objects
    services = manager.filter(workspace=workspace).select_related(
        "plan", "workspace", "registry_credential"
    )
    return _one(services.defer("registry_credential__auth_token"), service_id, "service")


def registry_credential_in(workspace: Workspace, credential_id: str) -> RegistryCredential:
    """A registry credential of ``workspace``."""
    return _one(workspace.registry_credentials.all(), credential_id, "registry credential")


def service_for(user: User | AnonymousUser, service_id: str) -> Service:
    """A service of a workspace ``user`` is a member of, with ``member_role``, their role there,
    in one query (every dashboard page and every log poll starts here)."""
    # for_user joins the reader's membership; the annotation reads its role from that same join.
    services = Service.objects.for_user(user).annotate(
        member_role=F("workspace__memberships__role")
    )
    return _one(services.select_related("plan", "workspace"), service_id, "service")


# Any: a ``jobs.Job``, which services may not import (not even for the type checker).
# What ``job_dict`` and the job pages read of a job's relations, joined in one query. Not the plan
# and the workspace: a join of seven tables cost PostgreSQL about 10 ms to plan, for 0.3 ms of
# work (issue 20); ``with_relations`` attaches those two from a lookup of their own.
JOB_JOINS = ("build", "env_snapshot", "created_by", "canceled_by")


def with_relations(jobs: list, workspace: Any) -> list:
    """``jobs`` (loaded with ``JOB_JOINS``), each given its plan (one query for the page's few)
    and ``workspace`` (the one already found for the request)."""
    from services.models import Plan

    plans = Plan.objects.in_bulk({job.plan_id for job in jobs})
    for job in jobs:
        job.plan = plans[job.plan_id]
        job.workspace = workspace
    return jobs


def job_of(service: Service, job_id: str) -> Any:
    """A job of an already found service, with what ``job_dict`` and the job pages show (the
    snapshot's digest, never its encrypted values)."""
    jobs = service.jobs.select_related(*JOB_JOINS).defer("env_snapshot__data")
    [job] = with_relations([_one(jobs, job_id, "job")], service.workspace)
    return job


def build_of(service: Service, build_id: str) -> Build:
    """A build of an already found service."""
    return _one(service.builds.select_related("created_by"), build_id, "build")

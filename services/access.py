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
from services.prepared import Prepared

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
    found = _SERVICE_IN.run(deleted, workspace_id=workspace.pk, service_id=service_id)
    if not found:
        raise NotFound("service")
    return found[0]


def _service_in(deleted: bool, workspace_id: str, service_id: str) -> QuerySet[Service]:
    manager = Service.all_objects if deleted else Service.objects
    services = manager.filter(workspace_id=workspace_id, pk=service_id).select_related(
        "plan", "workspace", "registry_credential"
    )
    return services.defer("registry_credential__auth_token").order_by()[:1]


# Every API request below a service starts with this lookup: compiled once (issue 20).
_SERVICE_IN = Prepared(_service_in)


def registry_credential_in(workspace: Workspace, credential_id: str) -> RegistryCredential:
    """A registry credential of ``workspace``."""
    return _one(workspace.registry_credentials.all(), credential_id, "registry credential")


def service_for(user: User | AnonymousUser, service_id: str) -> Service:
    """A service of a workspace ``user`` is a member of, with ``member_role``, their role there,
    in one query (every dashboard page and every log poll starts here)."""
    if not user.is_authenticated:
        raise NotFound("service")
    found = _SERVICE_FOR.run(user_id=user.pk, service_id=service_id)
    if not found:
        raise NotFound("service")
    return found[0]


def _service_for(shape: object, user_id: int, service_id: str) -> QuerySet[Service]:
    # The reader's membership joined; the annotation reads its role from that same join.
    services = Service.objects.filter(workspace__memberships__user_id=user_id, pk=service_id)
    services = services.annotate(member_role=F("workspace__memberships__role"))  # type: ignore[no-redef]
    return services.select_related("plan", "workspace").order_by()[:1]


_SERVICE_FOR = Prepared(_service_for)


# Any: a ``jobs.Job``, which services may not import (not even for the type checker).
# What ``job_dict`` and the job pages read of a job's relations, joined in one query. Not the plan
# and the workspace: a join of seven tables cost PostgreSQL about 10 ms to plan, for 0.3 ms of
# work (issue 20); ``with_relations`` attaches those two from a lookup of their own.
JOB_JOINS = ("build", "env_snapshot", "created_by", "canceled_by")
# What none of them shows: the snapshot's encrypted values (only its digest is shown) and the
# build's encrypted repository credential. Deferred, nothing is decrypted for a page (issue 20:
# decrypting the build's credential once per row was about 5% of a list request).
JOB_DEFERRED = ("env_snapshot__data", "build__repo_credential")


def jobs_with_joins(jobs: QuerySet) -> QuerySet:
    """``jobs`` joined with ``JOB_JOINS``, without the encrypted columns (``JOB_DEFERRED``)."""
    return jobs.select_related(*JOB_JOINS).defer(*JOB_DEFERRED)


def with_relations(jobs: list, workspace: Any, plan: Any = None) -> list:
    """``jobs`` (loaded with ``JOB_JOINS``), each given its plan and ``workspace`` (the one
    already found for the request). ``plan``, one already loaded (the service's), serves the jobs
    on it; the others' plans are read in one query for the page's few (none when every job runs on
    the service's plan, as most do)."""
    from services.models import Plan

    plans = {plan.pk: plan} if plan is not None else {}
    missing = {job.plan_id for job in jobs} - plans.keys()
    if missing:
        plans.update(Plan.objects.in_bulk(missing))
    for job in jobs:
        job.plan = plans[job.plan_id]
        job.workspace = workspace
    return jobs


def job_of(service: Service, job_id: str) -> Any:
    """A job of an already found service, with what ``job_dict`` and the job pages show (the
    snapshot's digest, never its encrypted values)."""
    found = _JOB_OF.run(service_id=service.pk, job_id=job_id)
    if not found:
        raise NotFound("job")
    [job] = with_relations(found, service.workspace, service.plan)
    job.service = service
    return job


def _job_of(shape: object, service_id: str, job_id: str) -> QuerySet:
    # The Job model through the relation (services imports no other app).
    jobs = Service._meta.get_field("jobs").related_model._default_manager
    return jobs_with_joins(jobs.filter(service_id=service_id, pk=job_id)).order_by()[:1]


# Every job page, API read of a job and log poll starts here: compiled once (issue 20).
_JOB_OF = Prepared(_job_of)


def build_of(service: Service, build_id: str) -> Build:
    """A build of an already found service."""
    return _one(service.builds.select_related("created_by"), build_id, "build")

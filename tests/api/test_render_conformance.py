"""Conformance with Render's API: every operation Oneoff serves under one of Render's operation ids
is called here through Render's generated Python client (PyPI ``render``, pinned), on a live
Oneoff with a workspace holding one of everything. The client is strict: a status its document
does not list raises ``UnexpectedStatus``, and its models raise on a missing field (``KeyError``),
an enum value out of range (``ValueError``) or a field of the wrong type. Each answer must be the
operation's success model, not Render's ``Error``.

``test_every_render_operation_oneoff_serves_is_checked_here`` keeps the table honest: an operation
added to Oneoff's API under a Render operation id fails it until it has a case below."""

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import render.public_api.api as render_api
from render.public_api.api.audit_logs import list_owner_audit_logs
from render.public_api.api.deploys import (
    cancel_deploy,
    create_deploy,
    list_deploys,
    retrieve_deploy,
    rollback_deploy,
)
from render.public_api.api.events import retrieve_event
from render.public_api.api.logs import (
    delete_owner_log_stream,
    delete_resource_log_stream,
    get_owner_log_stream,
    get_resource_log_stream,
    list_logs,
    list_logs_values,
    list_resource_log_streams,
    subscribe_logs,
    update_owner_log_stream,
    update_resource_log_stream,
)
from render.public_api.api.metrics import get_cpu, get_memory
from render.public_api.api.one_off_jobs import cancel_job, list_job, post_job, retrieve_job
from render.public_api.api.registry_credentials import (
    create_registry_credential,
    delete_registry_credential,
    list_registry_credentials,
    retrieve_registry_credential,
    update_registry_credential,
)
from render.public_api.api.services import (
    create_service,
    delete_env_var,
    delete_service,
    get_env_vars_for_service,
    list_events,
    list_services,
    resume_service,
    retrieve_env_var,
    retrieve_service,
    suspend_service,
    update_env_var,
    update_env_vars_for_service,
    update_service,
)
from render.public_api.api.users import get_user
from render.public_api.api.webhooks import (
    create_webhook,
    delete_webhook,
    list_webhook_events,
    list_webhooks,
    retrieve_webhook,
    update_webhook,
)
from render.public_api.api.workspaces import list_owners, retrieve_owner
from render.public_api.models import (
    CreateDeployBody,
    CreateRegistryCredentialBody,
    DeployStatus,
    EnvVarGenerateValue,
    EnvVarKeyValue,
    EnvVarValue,
    Error,
    EventType,
    JobStatus,
    ListLogsValuesLabel,
    LogStreamOwnerUpdate,
    LogStreamPreviewSetting,
    LogStreamResourceUpdate,
    LogStreamSetting,
    PostJobBody,
    RegistryCredentialRegistry,
    RollbackDeployBody,
    ServiceEventType,
    ServicePATCH,
    ServiceType,
    UpdateRegistryCredentialBody,
    WebhookPATCHInput,
    WebhookPOSTInput,
)

from api.api import api
from services.events import emit
from services.models import RegistryCredential, Role, ServiceEvent
from tests.api.test_render_services import post_body
from tests.helpers import make_member, render_client
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    """One of everything, in one workspace."""

    workspace: object
    service: object
    job: object
    credential: object
    webhook: object


@pytest.fixture
def world(workspace, service, make_job):
    """``service`` with its successful build (tests/plugins/jobs.py) and a finished job."""
    service.env_vars.create(key="DEBUG", value="0")
    job = make_job(lines=["hi", ("warning", 2)])
    credential = RegistryCredential.objects.create(
        workspace=workspace, name="hub", registry="DOCKER", username="bot", auth_token="t0k3n"
    )
    webhook = Webhook.objects.create(
        workspace=workspace, name="ops", url="https://127.0.0.1:8443/h", event_filter=[]
    )
    emit(service, "job_run_ended", jobId=job.id, status="succeeded", reason={"evicted": False})
    return World(workspace, service, job, credential, webhook)


@dataclass
class Case:
    call: Callable  # (client, world) -> Response
    status: int = 200


CASES: dict[str, Case] = {
    # Owners and users
    "list-owners": Case(lambda c, w: list_owners.sync_detailed(client=c)),
    "retrieve-owner": Case(lambda c, w: retrieve_owner.sync_detailed(w.workspace.id, client=c)),
    "get-user": Case(lambda c, w: get_user.sync_detailed(client=c)),
    "list-owner-audit-logs": Case(
        lambda c, w: list_owner_audit_logs.sync_detailed(w.workspace.id, client=c)
    ),
    # Services
    "list-services": Case(lambda c, w: list_services.sync_detailed(client=c)),
    "create-service": Case(
        lambda c, w: create_service.sync_detailed(
            client=c,
            body=post_body(ServiceType.WEB_SERVICE, w.workspace, image=True, disk=False),
        ),
        201,
    ),
    "retrieve-service": Case(lambda c, w: retrieve_service.sync_detailed(w.service.id, client=c)),
    "update-service": Case(
        lambda c, w: update_service.sync_detailed(
            w.service.id, client=c, body=ServicePATCH(name="web-2")
        )
    ),
    "suspend-service": Case(
        lambda c, w: suspend_service.sync_detailed(w.service.id, client=c), 202
    ),
    "resume-service": Case(lambda c, w: resume_service.sync_detailed(w.service.id, client=c), 202),
    # Events
    "list-events": Case(
        lambda c, w: list_events.sync_detailed(
            w.service.id, client=c, type_=ServiceEventType.JOB_RUN_ENDED
        )
    ),
    "retrieve-event": Case(
        lambda c, w: retrieve_event.sync_detailed(
            ServiceEvent.objects.filter(service=w.service).latest("created_at").id, client=c
        )
    ),
    "delete-service": Case(lambda c, w: delete_service.sync_detailed(w.service.id, client=c), 204),
    # Deploys (the world's build predates deploys: ``buildId`` deploys it again)
    "list-deploys": Case(
        lambda c, w: (
            create_deploy.sync(w.service.id, client=c, body=CreateDeployBody()),
            list_deploys.sync_detailed(
                w.service.id, client=c, status=[DeployStatus.QUEUED, DeployStatus.LIVE]
            ),
        )[1]
    ),
    "create-deploy": Case(
        lambda c, w: create_deploy.sync_detailed(w.service.id, client=c, body=CreateDeployBody()),
        201,
    ),
    "retrieve-deploy": Case(
        lambda c, w: retrieve_deploy.sync_detailed(
            w.service.id,
            create_deploy.sync(w.service.id, client=c, body=CreateDeployBody()).id,
            client=c,
        )
    ),
    "cancel-deploy": Case(
        lambda c, w: cancel_deploy.sync_detailed(
            w.service.id,
            create_deploy.sync(w.service.id, client=c, body=CreateDeployBody()).id,
            client=c,
        )
    ),
    "rollback-deploy": Case(
        lambda c, w: rollback_deploy.sync_detailed(
            w.service.id,
            client=c,
            body=RollbackDeployBody(
                deploy_id=create_deploy.sync(
                    w.service.id, client=c, body=CreateDeployBody(build_id=w.job.build_id)
                ).id
            ),
        ),
        201,
    ),
    # Env vars
    "get-env-vars-for-service": Case(
        lambda c, w: get_env_vars_for_service.sync_detailed(w.service.id, client=c)
    ),
    "update-env-vars-for-service": Case(
        lambda c, w: update_env_vars_for_service.sync_detailed(
            w.service.id, client=c, body=[EnvVarKeyValue(key="A", value="1")]
        )
    ),
    "retrieve-env-var": Case(
        lambda c, w: retrieve_env_var.sync_detailed(w.service.id, "DEBUG", client=c)
    ),
    "update-env-var": Case(
        lambda c, w: update_env_var.sync_detailed(
            w.service.id, "B", client=c, body=EnvVarGenerateValue(generate_value=True)
        )
    ),
    "delete-env-var": Case(
        lambda c, w: delete_env_var.sync_detailed(w.service.id, "DEBUG", client=c), 204
    ),
    # One-off jobs
    "post-job": Case(
        lambda c, w: post_job.sync_detailed(
            w.service.id, client=c, body=PostJobBody(start_command="echo hello")
        ),
        201,
    ),
    "list-job": Case(
        lambda c, w: list_job.sync_detailed(
            w.service.id, client=c, status=[JobStatus.SUCCEEDED, JobStatus.FAILED]
        )
    ),
    "retrieve-job": Case(lambda c, w: retrieve_job.sync_detailed(w.service.id, w.job.id, client=c)),
    "cancel-job": Case(
        lambda c, w: cancel_job.sync_detailed(
            w.service.id,
            post_job.sync(w.service.id, client=c, body=PostJobBody(start_command="sleep 60")).id,
            client=c,
        )
    ),
    # Logs and log streams
    "list-logs": Case(
        lambda c, w: list_logs.sync_detailed(
            client=c, owner_id=w.workspace.id, resource=[w.job.id], limit=1
        )
    ),
    "list-logs-values": Case(
        lambda c, w: list_logs_values.sync_detailed(
            client=c, owner_id=w.workspace.id, label=ListLogsValuesLabel.LEVEL, resource=[w.job.id]
        )
    ),
    # A WebSocket: a plain GET is a 400 in Render's Error shape; the stream's messages are read as
    # Render's Log model in tests/api/test_logs_subscribe.py.
    "subscribe-logs": Case(
        lambda c, w: subscribe_logs.sync_detailed(
            client=c, owner_id=w.workspace.id, resource=[w.job.id]
        ),
        status=400,
    ),
    "list-resource-log-streams": Case(
        lambda c, w: (
            update_resource_log_stream.sync(
                w.service.id,
                client=c,
                body=LogStreamResourceUpdate(setting=LogStreamSetting.DROP),
            ),
            list_resource_log_streams.sync_detailed(client=c, owner_id=[w.workspace.id]),
        )[1]
    ),
    "get-owner-log-stream": Case(
        lambda c, w: (
            update_owner_log_stream.sync(
                w.workspace.id,
                client=c,
                body=LogStreamOwnerUpdate(
                    preview=LogStreamPreviewSetting.SEND, endpoint="localhost:6514", token="s"
                ),
            ),
            get_owner_log_stream.sync_detailed(w.workspace.id, client=c),
        )[1]
    ),
    "update-owner-log-stream": Case(
        lambda c, w: update_owner_log_stream.sync_detailed(
            w.workspace.id,
            client=c,
            body=LogStreamOwnerUpdate(
                preview=LogStreamPreviewSetting.DROP, endpoint="localhost:6514", token="s"
            ),
        )
    ),
    "delete-owner-log-stream": Case(
        lambda c, w: (
            update_owner_log_stream.sync(
                w.workspace.id,
                client=c,
                body=LogStreamOwnerUpdate(
                    preview=LogStreamPreviewSetting.SEND, endpoint="localhost:6514", token="s"
                ),
            ),
            delete_owner_log_stream.sync_detailed(w.workspace.id, client=c),
        )[1],
        204,
    ),
    "get-resource-log-stream": Case(
        lambda c, w: (
            update_resource_log_stream.sync(
                w.service.id, client=c, body=LogStreamResourceUpdate(setting=LogStreamSetting.DROP)
            ),
            get_resource_log_stream.sync_detailed(w.service.id, client=c),
        )[1]
    ),
    "update-resource-log-stream": Case(
        lambda c, w: update_resource_log_stream.sync_detailed(
            w.service.id, client=c, body=LogStreamResourceUpdate(setting=LogStreamSetting.DROP)
        )
    ),
    "delete-resource-log-stream": Case(
        lambda c, w: (
            update_resource_log_stream.sync(
                w.service.id, client=c, body=LogStreamResourceUpdate(setting=LogStreamSetting.DROP)
            ),
            delete_resource_log_stream.sync_detailed(w.service.id, client=c),
        )[1],
        204,
    ),
    # Metrics
    "get-memory": Case(lambda c, w: get_memory.sync_detailed(client=c, resource=w.job.id)),
    "get-cpu": Case(lambda c, w: get_cpu.sync_detailed(client=c, resource=w.job.id)),
    # Registry credentials
    "list-registry-credentials": Case(
        lambda c, w: list_registry_credentials.sync_detailed(client=c)
    ),
    "create-registry-credential": Case(
        lambda c, w: create_registry_credential.sync_detailed(
            client=c,
            body=CreateRegistryCredentialBody(
                registry=RegistryCredentialRegistry.GITHUB,
                name="ghcr",
                username="acme",
                auth_token="t",
                owner_id=w.workspace.id,
            ),
        )
    ),
    "retrieve-registry-credential": Case(
        lambda c, w: retrieve_registry_credential.sync_detailed(w.credential.id, client=c)
    ),
    "update-registry-credential": Case(
        lambda c, w: update_registry_credential.sync_detailed(
            w.credential.id,
            client=c,
            body=UpdateRegistryCredentialBody(
                registry=RegistryCredentialRegistry.DOCKER,
                name="hub-2",
                username="bot",
                auth_token="t2",
            ),
        )
    ),
    "delete-registry-credential": Case(
        lambda c, w: delete_registry_credential.sync_detailed(w.credential.id, client=c), 204
    ),
    # Webhooks
    "list-webhooks": Case(lambda c, w: list_webhooks.sync_detailed(client=c)),
    "create-webhook": Case(
        lambda c, w: create_webhook.sync_detailed(
            client=c,
            body=WebhookPOSTInput(
                owner_id=w.workspace.id,
                url="https://127.0.0.1:8443/new",
                name="new",
                enabled=True,
                event_filter=[EventType.JOB_RUN_ENDED],
            ),
        ),
        201,
    ),
    "retrieve-webhook": Case(lambda c, w: retrieve_webhook.sync_detailed(w.webhook.id, client=c)),
    "update-webhook": Case(
        lambda c, w: update_webhook.sync_detailed(
            w.webhook.id, client=c, body=WebhookPATCHInput(enabled=False)
        )
    ),
    "delete-webhook": Case(lambda c, w: delete_webhook.sync_detailed(w.webhook.id, client=c), 204),
    "list-webhook-events": Case(
        lambda c, w: list_webhook_events.sync_detailed(w.webhook.id, client=c)
    ),
}


def render_operation_ids() -> set[str]:
    """Every operation id in Render's document, from its generated client's module names."""
    ids = set()
    for group in pkgutil.iter_modules(render_api.__path__):
        package = importlib.import_module(f"{render_api.__name__}.{group.name}")
        ids |= {m.name.replace("_", "-") for m in pkgutil.iter_modules(package.__path__)}
    return ids


def oneoff_operation_ids() -> set[str]:
    schema = api.get_openapi_schema()
    return {
        op["operationId"]
        for item in schema["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }


def test_every_render_operation_oneoff_serves_is_checked_here():
    served = oneoff_operation_ids() & render_operation_ids()
    assert len(served) >= 45
    assert sorted(served - set(CASES)) == []
    assert sorted(set(CASES) - served) == []


@pytest.mark.parametrize("operation", sorted(CASES))
def test_the_answer_parses_as_renders_model(operation, render, world):
    case = CASES[operation]
    answer = case.call(render, world)
    assert answer.status_code == case.status, answer.content
    if case.status in (202, 204):  # Render's document: no content
        assert answer.parsed is None
        assert answer.content == b""
    elif case.status >= 400:
        assert isinstance(answer.parsed, Error), answer.parsed
    else:
        assert answer.parsed is not None
        assert not isinstance(answer.parsed, Error), answer.parsed
        parsed = answer.parsed if isinstance(answer.parsed, list) else [answer.parsed]
        assert all(item is not None for item in parsed)


def test_a_viewer_gets_renders_error_shape_for_what_it_may_not_do(live_server, workspace, world):
    """A 403, read as Render's ``Error`` (Render's document lists no 403 for some of these, so
    the client is told not to raise on it)."""
    viewer = make_member(workspace, "vic@acme.test", Role.VIEWER)
    with render_client(live_server, viewer, workspace) as client:
        client.raise_on_unexpected_status = False
        for answer in (
            post_job.sync_detailed(
                world.service.id, client=client, body=PostJobBody(start_command="echo")
            ),
            update_env_var.sync_detailed(
                world.service.id, "X", client=client, body=EnvVarValue(value="1")
            ),
            suspend_service.sync_detailed(world.service.id, client=client),
            delete_webhook.sync_detailed(world.webhook.id, client=client),
            create_deploy.sync_detailed(world.service.id, client=client, body=CreateDeployBody()),
            rollback_deploy.sync_detailed(
                world.service.id, client=client, body=RollbackDeployBody(deploy_id="dep-x")
            ),
            delete_service.sync_detailed(world.service.id, client=client),
        ):
            assert answer.status_code == 403
            error = Error.from_dict(json.loads(answer.content))
            assert error.id == "forbidden"
            assert error.message

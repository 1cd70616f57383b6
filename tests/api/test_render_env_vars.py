"""Render's own Python client (PyPI ``render``) drives a service's env vars on a live Oneoff: all
five operations, both value forms (a value and ``generateValue``), each answer parsed strictly as
Render's model; a developer or viewer reading values gets a 403 its client reads as ``Error``."""

import pytest
from render.public_api.api.services import (
    delete_env_var,
    get_env_vars_for_service,
    retrieve_env_var,
    update_env_var,
    update_env_vars_for_service,
)
from render.public_api.models import (
    EnvVar,
    EnvVarGenerateValue,
    EnvVarKeyGenerateValue,
    EnvVarKeyValue,
    EnvVarValue,
    EnvVarWithCursor,
    Error,
)

from tests.helpers import render_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web(make_service):
    return make_service(name="web")


def test_render_client_runs_every_env_var_operation(render, web):
    body = [
        EnvVarKeyValue(key="DEBUG", value="0"),
        EnvVarKeyGenerateValue(key="SECRET_KEY", generate_value=True),
    ]
    replaced = update_env_vars_for_service.sync(web.id, client=render, body=body)
    assert all(isinstance(item, EnvVarWithCursor) for item in replaced)
    values = {item.env_var.key: item.env_var.value for item in replaced}
    assert values["DEBUG"] == "0"
    assert len(values["SECRET_KEY"]) >= 32

    one = update_env_var.sync(web.id, "TOKEN", client=render, body=EnvVarValue(value="t-1"))
    assert one == EnvVar(key="TOKEN", value="t-1")
    generated = update_env_var.sync(
        web.id, "API_SALT", client=render, body=EnvVarGenerateValue(generate_value=True)
    )
    assert isinstance(generated, EnvVar)
    assert len(generated.value) >= 32
    assert web.env_dict()["API_SALT"] == generated.value

    listed = get_env_vars_for_service.sync(web.id, client=render, limit=2)
    assert [item.env_var.key for item in listed] == ["API_SALT", "DEBUG"]
    rest = get_env_vars_for_service.sync(web.id, client=render, cursor=listed[-1].cursor)
    assert [item.env_var.key for item in rest] == ["SECRET_KEY", "TOKEN"]

    assert retrieve_env_var.sync(web.id, "TOKEN", client=render) == one
    assert delete_env_var.sync_detailed(web.id, "TOKEN", client=render).status_code == 204
    missing = retrieve_env_var.sync(web.id, "TOKEN", client=render)
    assert isinstance(missing, Error)
    assert "not found" in missing.message


@pytest.mark.parametrize("role", ["developer", "viewer"])
def test_a_role_that_may_not_read_values_gets_an_error_render_reads(
    request, live_server, workspace, web, role
):
    web.env_vars.create(key="DATABASE_URL", value="postgres://secret")
    with render_client(live_server, request.getfixturevalue(role), workspace) as client:
        for answer in (
            get_env_vars_for_service.sync_detailed(web.id, client=client),
            retrieve_env_var.sync_detailed(web.id, "DATABASE_URL", client=client),
        ):
            assert answer.status_code == 403
            assert isinstance(answer.parsed, Error)
            assert answer.parsed.id == "forbidden"
            assert "admins" in answer.parsed.message
            assert b"secret" not in answer.content
        denied = update_env_var.sync(web.id, "X", client=client, body=EnvVarValue(value="1"))
        assert isinstance(denied, Error)
    assert set(web.env_dict()) == {"DATABASE_URL"}


def test_another_workspaces_admin_finds_no_env_vars(live_server, outsider, other_workspace, web):
    with render_client(live_server, outsider, other_workspace) as client:
        answer = get_env_vars_for_service.sync_detailed(web.id, client=client)
        assert answer.status_code == 404
        assert isinstance(answer.parsed, Error)
        gen = EnvVarGenerateValue(generate_value=True)
        assert update_env_var.sync_detailed(web.id, "X", client=client, body=gen).status_code == 404
    assert web.env_dict() == {}

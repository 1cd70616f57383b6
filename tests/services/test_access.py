"""services.access: scoped lookups (a foreign object is a missing one) and the role rule."""

import pytest

from services.access import ADMIN, READ, WRITE, build_of, check_role, service_for, service_in
from services.errors import Forbidden, NotFound
from services.models import Role

pytestmark = pytest.mark.django_db


def test_service_in_finds_a_service_of_the_workspace(service, workspace):
    assert service_in(workspace, service.id) == service


def test_a_service_of_another_workspace_is_not_found(service, other_workspace):
    with pytest.raises(NotFound, match="service not found"):
        service_in(other_workspace, service.id)


def test_service_for_carries_the_readers_role(service, developer):
    assert service_for(developer, service.id).member_role == Role.DEVELOPER


def test_an_outsider_finds_no_service(service, outsider):
    with pytest.raises(NotFound):
        service_for(outsider, service.id)


def test_a_build_of_another_service_is_not_found(service, make_service, make_build):
    other = make_service(name="other")
    build = make_build(other)
    assert build_of(other, build.id) == build
    with pytest.raises(NotFound, match="build not found"):
        build_of(service, build.id)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.ADMIN, {READ, WRITE, ADMIN}),
        (Role.DEVELOPER, {READ, WRITE}),
        (Role.VIEWER, {READ}),
    ],
)
def test_each_role_may_do_what_the_next_may_and_more(role, allowed):
    for need in (READ, WRITE, ADMIN):
        if need in allowed:
            check_role(role, need)
        else:
            with pytest.raises(Forbidden):
                check_role(role, need)

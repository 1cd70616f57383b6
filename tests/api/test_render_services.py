"""Render's own Python client (PyPI ``render``, its generated models the schema) reads and
writes services on a live Oneoff: every answer parses as Render's model for it, strictly (a
missing field is a ``KeyError``, an enum out of range a ``ValueError``), for each service type,
built from an image or a repository, with and without a disk."""

import re

import pytest
from render.public_api.api.services import (
    create_service,
    list_services,
    resume_service,
    retrieve_service,
    suspend_service,
    update_service,
)
from render.public_api.api.users import get_user
from render.public_api.api.workspaces import retrieve_owner
from render.public_api.models import (
    BackgroundWorkerDetails,
    BackgroundWorkerDetailsPOST,
    CronJobDetails,
    CronJobDetailsPOST,
    DockerDetails,
    DockerDetailsPOST,
    Image,
    Owner,
    OwnerType,
    PrivateServiceDetails,
    PrivateServiceDetailsPOST,
    Region,
    Service,
    ServiceAndDeploy,
    ServiceDisk,
    ServicePATCH,
    ServicePOST,
    ServiceType,
    ServiceWithCursor,
    User,
    WebServiceDetails,
    WebServiceDetailsPOST,
)

pytestmark = pytest.mark.django_db(transaction=True)

DETAILS = {
    ServiceType.WEB_SERVICE: (WebServiceDetailsPOST, WebServiceDetails),
    ServiceType.PRIVATE_SERVICE: (PrivateServiceDetailsPOST, PrivateServiceDetails),
    ServiceType.BACKGROUND_WORKER: (BackgroundWorkerDetailsPOST, BackgroundWorkerDetails),
    ServiceType.CRON_JOB: (CronJobDetailsPOST, CronJobDetails),
}


def post_body(kind: ServiceType, workspace, *, image: bool, disk: bool) -> ServicePOST:
    post_details, _ = DETAILS[kind]
    extra: dict = {}
    if kind == ServiceType.CRON_JOB:
        extra["schedule"] = "*/5 * * * *"
    if disk and kind != ServiceType.CRON_JOB:
        extra["disk"] = ServiceDisk(name="data", mount_path="/data", size_gb=5)
    if not image:
        extra["env_specific_details"] = DockerDetailsPOST(
            docker_context=".", dockerfile_path="./Dockerfile"
        )
    body = ServicePOST(
        type_=kind,
        name=f"{kind.value}-{'image' if image else 'repo'}{'-disk' if disk else ''}",
        owner_id=workspace.id,
        service_details=post_details(**extra),
    )
    if image:
        body.image = Image(owner_id=workspace.id, image_path="docker.io/library/busybox:1.36")
    else:
        body.repo = "https://github.com/render-examples/flask-hello-world"
        body.branch = "main"
    return body


CASES = [
    (kind, image, disk)
    for kind in DETAILS
    for image in (True, False)
    for disk in (False, True)
    if not (disk and kind == ServiceType.CRON_JOB)
]


@pytest.mark.parametrize(("kind", "image", "disk"), CASES)
def test_renders_client_creates_lists_reads_and_updates_each_kind(
    render, workspace, kind, image, disk
):
    made = create_service.sync_detailed(
        client=render, body=post_body(kind, workspace, image=image, disk=disk)
    )
    assert made.status_code == 201, made.content
    assert isinstance(made.parsed, ServiceAndDeploy), made.content
    service = made.parsed.service
    assert isinstance(service, Service)
    _, details_model = DETAILS[kind]
    assert isinstance(service.service_details, details_model)
    assert service.service_details.region == Region.OREGON
    if kind != ServiceType.CRON_JOB:
        assert service.service_details.num_instances == 1
    if not image:
        assert isinstance(service.service_details.env_specific_details, DockerDetails)
        assert service.service_details.env_specific_details.dockerfile_path == "./Dockerfile"
    if disk:
        assert service.service_details.disk.mount_path == "/data"
        assert service.service_details.disk.id.startswith("dsk-")
    if kind == ServiceType.CRON_JOB:
        assert service.service_details.schedule == "*/5 * * * *"

    got = retrieve_service.sync(service.id, client=render)
    assert isinstance(got, Service), got
    assert got.to_dict() == service.to_dict()
    listed = list_services.sync(client=render, limit=100)
    assert all(isinstance(item, ServiceWithCursor) for item in listed), listed
    assert service.id in {item.service.id for item in listed}

    renamed = update_service.sync(service.id, client=render, body=ServicePATCH(name="renamed"))
    assert isinstance(renamed, Service), renamed
    assert renamed.name == "renamed"
    assert suspend_service.sync_detailed(service.id, client=render).status_code == 202
    assert retrieve_service.sync(service.id, client=render).suspended.value == "suspended"
    assert resume_service.sync_detailed(service.id, client=render).status_code == 202


@pytest.mark.parametrize(
    ("kind", "schedule", "message"),
    [
        ("cron_job", "every five minutes", "serviceDetails.schedule"),
        ("web_service", "*/5 * * * *", "serviceDetails.schedule: only cron jobs have a schedule"),
    ],
)
def test_a_bad_schedule_is_a_400_naming_it(owner_api, workspace, kind, schedule, message):
    body = {
        "type": kind,
        "name": "nightly",
        "ownerId": workspace.id,
        "image": {"imagePath": "docker.io/library/busybox:1.36"},
        "serviceDetails": {"schedule": schedule},
    }
    response = owner_api.post("/v1/services", body)
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]


def test_renders_client_reads_the_keys_user_and_its_personal_owner(render, owner, workspace):
    user = get_user.sync(client=render)
    assert isinstance(user, User), user
    assert user.email == owner.email
    assert re.fullmatch(r"own-[0-9a-v]{20}", user.id)
    personal = retrieve_owner.sync(user.id, client=render)
    assert isinstance(personal, Owner), personal
    assert (personal.id, personal.type_, personal.email) == (user.id, OwnerType.USER, owner.email)
    team = retrieve_owner.sync(workspace.id, client=render)
    assert (team.id, team.type_) == (workspace.id, OwnerType.TEAM)


def test_another_users_owner_id_is_a_404(owner_api, outsider_api, viewer_api):
    mine = owner_api.get("/v1/users").json()["id"]
    assert viewer_api.get("/v1/users").json()["id"] != mine
    for api in (outsider_api, viewer_api):
        assert api.get(f"/v1/owners/{mine}").status_code == 404
    assert owner_api.get(f"/v1/owners/{mine}").status_code == 200

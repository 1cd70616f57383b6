"""services 0014 gives every build made before deploys existed its deploy, so the deploys API
lists them and a rollback can go back to them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("services", "0013_service_events")]
AFTER = [("services", "0014_deploys_service_deleted_at")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_existing_build_gets_its_deploy(service, make_build):
    made = [make_build(service), make_build(service, status="failed")]
    try:
        old = migrate(BEFORE)
        assert not any(
            f.name == "deleted_at" for f in old.get_model("services", "Service")._meta.fields
        )
        new = migrate(AFTER).get_model("services", "Deploy")
        deploys = {d.build_id: d for d in new.objects.all()}
        assert set(deploys) == {b.id for b in made}
        for build in made:
            deploy = deploys[build.id]
            assert deploy.id == "dep-" + build.id.removeprefix("bld-")
            assert (deploy.service_id, deploy.trigger, deploy.reuses_build) == (
                service.id,
                "other",
                False,
            )
            assert deploy.created_at == build.created_at
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

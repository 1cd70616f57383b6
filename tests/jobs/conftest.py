"""Fixtures for the runner's tests alone; the Celery worker and the busybox jobs are in
tests/plugins/worker.py."""

import pytest

from services.models import Plan


@pytest.fixture
def tiny_plan(db):
    plan, _ = Plan.objects.update_or_create(
        id="plan-srv-test-tiny",
        defaults={
            "name": "Tiny (test)",
            "kind": "srv",
            "memory_mb": 8,
            "cpu": "0.25",
            "price_monthly": "1.00",
        },
    )
    return plan

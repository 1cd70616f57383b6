from datetime import timedelta

from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from jobs.models import RunnerHost


def healthz(request):
    """Liveness for web, and whether a worker has heart-beaten through the broker lately."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    recent = timezone.now() - timedelta(seconds=60)
    hosts = RunnerHost.objects.filter(last_seen_at__gte=recent).order_by("name")
    return JsonResponse(
        {
            "database": "ok",
            "workers": [
                {"host": h.name, "lastSeenAt": h.last_seen_at.isoformat(timespec="microseconds")}
                for h in hosts
            ],
        }
    )

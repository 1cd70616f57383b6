"""A service's events in Render's shape: ``GET /v1/services/{serviceId}/events``.

Render's query (``type``, ``startTime``, ``endTime``, ``cursor``, ``limit``) and answer
(``[{"event": {id, timestamp, serviceId, type, details}, "cursor"}]``, newest first). ``type``
takes several types, repeated or comma-separated (``api.query``); a value that is not one of
Render's service event types is a 400 naming it. What Oneoff writes and when: ``services.events``.
"""

from datetime import datetime
from typing import Annotated

from ninja import Field, Query, Router, Schema

from api.auth import ApiRequest
from api.errors import bad_request, errors, not_found
from api.fields import aware, isoformat
from api.pagination import Page, encode_cursor, paginate
from services.access import service_in
from services.events import EVENT_TYPES
from services.models import ServiceEvent

router = Router(tags=["Services"])


# Documented as Render's enum; checked in the view, so that a 400 names the value it refuses.
EventTypeName = Annotated[str, Field(json_schema_extra={"enum": list(EVENT_TYPES)})]


class EventListQuery(Page):
    type: list[EventTypeName] | None = Field(
        None,
        max_length=60,
        description="Event types, repeated (`type=build_started&type=build_ended`) or "
        "comma-separated; any of Render's service event types (Oneoff writes job_run_ended, "
        "build_started, build_ended, deploy_started, deploy_ended, service_suspended and "
        "service_resumed).",
    )
    startTime: datetime | None = Field(None, description="Events at or after this time.")
    endTime: datetime | None = Field(None, description="Events before this time.")


class EventOut(Schema):
    id: str = Field(pattern=r"^evt-[0-9a-v]{20}$")
    timestamp: str
    serviceId: str
    type: str
    details: dict = Field(description="Render's details object for the event's type.")


class EventWithCursor(Schema):
    event: EventOut
    cursor: str


def event_dict(event: ServiceEvent) -> dict:
    return {
        "id": event.id,
        "timestamp": isoformat(event.created_at),
        "serviceId": event.service_id,
        "type": event.type,
        "details": event.details,
    }


@router.get(
    "/services/{serviceId}/events",
    response={200: list[EventWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="list-events",
    summary="List events",
    description="The service's events, newest first: jobs that ended (`job_run_ended`, with "
    "the exit status in `reason.nonZeroExit`), builds started and ended, deploys, suspends and "
    "resumes. Kept for the workspace's log retention period.",
)
def list_events(request: ApiRequest, serviceId: str, query: Query[EventListQuery]):
    service = service_in(request.auth.workspace, serviceId)
    events = ServiceEvent.objects.filter(service=service)
    if query.type:
        unknown = next((t for t in query.type if t not in EVENT_TYPES), None)
        if unknown is not None:
            raise bad_request(
                "type",
                f"{unknown!r} is not one of Render's service event types; Oneoff writes "
                "job_run_ended, build_started, build_ended, deploy_started, deploy_ended, "
                "service_suspended and service_resumed",
            )
        events = events.filter(type__in=query.type)
    if query.startTime is not None:
        events = events.filter(created_at__gte=aware(query.startTime, "startTime"))
    if query.endTime is not None:
        events = events.filter(created_at__lt=aware(query.endTime, "endTime"))
    return [
        {"event": event_dict(e), "cursor": encode_cursor(e.created_at, e.id)}
        for e in paginate(events, query, "evt")
    ]


@router.get(
    "/events/{eventId}",
    response={200: EventOut, **errors(404)},
    operation_id="retrieve-event",
    summary="Retrieve event",
    description="One event of a service of this workspace, by id.",
)
def retrieve_event(request: ApiRequest, eventId: str):
    event = ServiceEvent.objects.filter(
        id=eventId, service__workspace=request.auth.workspace
    ).first()
    if event is None:
        raise not_found("event")
    return event_dict(event)

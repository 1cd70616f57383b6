"""The /v1 API (Render-compatible): one NinjaAPI with every router, at /v1/ (OpenAPI at
/v1/openapi.json).

Routers build on ``api.base`` (read its docstring): ``request.auth`` is the ApiKey (with
``.workspace``, ``.user``, ``.read_only``, ``.role``), ``require_write`` / ``require_admin`` raise
403s, ``ApiError(status, id, message)`` answers ``{"id", "message"}``, ``get_service`` /
``get_job`` / ``get_build`` are the workspace-scoped lookups (404 for missing or foreign), and
``errors(...)`` declares error responses for the OpenAPI document. Authentication and rate limits
are applied here, at the API level, so every router gets them without asking.
"""

from ninja import Router

from api.base import (  # noqa: F401  (re-exported for convenience outside routers)
    ApiError,
    ApiKeyAuth,
    OneoffApi,
    bad_request,
    errors,
    get_build,
    get_job,
    get_service,
    install_error_handlers,
    require_admin,
    require_write,
)
from api.routers.jobs import router as jobs_router
from api.routers.logs import router as logs_router
from api.routers.logstreams import router as logstreams_router
from api.routers.services import owners_router
from api.routers.services import router as services_router

api = OneoffApi(
    title="Oneoff API",
    version="1.0.0",
    description=(
        "Render-compatible API for one-off jobs, services, env vars and builds. Authenticate "
        "with `Authorization: Bearer <API key>`. Errors are `{id, message}`; a 400 names the "
        "field. Lists are newest first with opaque cursors. Rate limits per key; limited "
        "responses carry `Ratelimit-Limit`, `Ratelimit-Remaining`, `Ratelimit-Reset` (and "
        "`Retry-After` on a 429)."
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url=None,
    auth=ApiKeyAuth(),
)
install_error_handlers(api)

api.add_router("", owners_router)
api.add_router("", services_router)
api.add_router("", jobs_router)
api.add_router("", logs_router)
api.add_router("", logstreams_router)


# Last, so it matches only what no router did: an unknown path is a JSON 404 too.
fallback_router = Router()


@fallback_router.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", auth=None, include_in_schema=False
)
def unknown_path(request, rest: str):
    raise ApiError(404, "not_found", f"no such endpoint: {request.method} /v1/{rest}")


api.add_router("", fallback_router)

"""The /v1 API (Render-compatible): one NinjaAPI with every router, at /v1/ (OpenAPI at
/v1/openapi.json).

What a router builds on, one module per concern (read their docstrings): ``api.auth``
(``request.auth``, ``require_write`` / ``require_admin``, rate limits), ``api.errors``
(``ApiError``, ``bad_request``, ``errors(...)`` for the OpenAPI document, the mapping of the
domain's errors), ``api.pagination`` (keyset pages and cursors), ``api.fields`` (timestamps),
``api.responses`` (a view's own ``HttpResponse``) and ``api.idempotency``. Ownership is the
domain's: ``services.access.service_in(request.auth.workspace, id)``, ``job_of`` and
``build_of`` (404 for missing or foreign). Authentication and rate limits are applied here, at
the API level, so every router gets them without asking. Routers never import this module: it
imports them.
"""

from ninja import NinjaAPI, Router

from api.auth import ApiKeyAuth
from api.errors import ApiError, install_error_handlers
from api.responses import with_rate_limit_headers
from api.routers.audit_logs import router as audit_logs_router
from api.routers.builds import router as builds_router
from api.routers.env_vars import router as env_vars_router
from api.routers.events import router as events_router
from api.routers.jobs import router as jobs_router
from api.routers.logs import router as logs_router
from api.routers.logstreams import router as logstreams_router
from api.routers.metrics import router as metrics_router
from api.routers.owners import router as owners_router
from api.routers.registry_credentials import router as registry_credentials_router
from api.routers.services import router as services_router
from api.routers.webhooks import router as webhooks_router


class OneoffApi(NinjaAPI):
    def create_response(self, request, data, *, status=None, temporal_response=None):
        response = super().create_response(
            request, data, status=status, temporal_response=temporal_response
        )
        return with_rate_limit_headers(request, response)


api = OneoffApi(
    title="Oneoff API",
    version="1.0.0",
    description=(
        "Render-compatible API for one-off jobs, services, env vars and builds. Authenticate "
        "with `Authorization: Bearer <API key>`. Errors are `{id, message}`; a 400 names the "
        "field. Lists are newest first with opaque cursors. Rate limits per key, per user and "
        "per workspace; responses carry `Ratelimit-Limit`, `Ratelimit-Remaining`, "
        "`Ratelimit-Reset` of the tightest (and `Retry-After` on a 429)."
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url=None,
    auth=ApiKeyAuth(),
)
install_error_handlers(api)

api.add_router("", owners_router)
api.add_router("", audit_logs_router)
api.add_router("", services_router)
api.add_router("", env_vars_router)
api.add_router("", builds_router)
api.add_router("", events_router)
api.add_router("", jobs_router)
api.add_router("", logs_router)
api.add_router("", logstreams_router)
api.add_router("", metrics_router)
api.add_router("", registry_credentials_router)
api.add_router("", webhooks_router)


# Last, so it matches only what no router did: an unknown path is a JSON 404 too.
fallback_router = Router()


@fallback_router.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", auth=None, include_in_schema=False
)
def unknown_path(request, rest: str):
    raise ApiError(404, "not_found", f"no such endpoint: {request.method} /v1/{rest}")


api.add_router("", fallback_router)

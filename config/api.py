"""The /v1 API (Render-compatible). Routers live beside their models."""

from ninja import NinjaAPI

from jobs.api import router as jobs_router
from jobs.logs_api import router as logs_router
from services.api import router as services_router
from services.logstreams_api import router as logstreams_router

api = NinjaAPI(
    title="Oneoff API",
    version="1.0.0",
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url=None,
)
api.add_router("", services_router)
api.add_router("", jobs_router)
api.add_router("", logs_router)
api.add_router("", logstreams_router)

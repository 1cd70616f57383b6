"""The web process's ASGI application (gunicorn's ``uvicorn_worker.UvicornWorker``, see
``config/gunicorn.py``).

- HTTP goes to Django's WSGI application on a pool of ``WEB_THREADS`` threads (``a2wsgi``), as
  gunicorn's threaded workers served it: Django's own ASGI handler runs every sync view on one
  thread per process, which would serialize the dashboard's polls and the API.
- WebSocket connections to ``/v1/logs/subscribe`` go to Render's live tail (``api.logtail``);
  any other WebSocket path is a 404.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_wsgi = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from api import logtail  # noqa: E402
from services.startup import freeze_startup_objects  # noqa: E402

http = WSGIMiddleware(django_wsgi, workers=int(os.environ.get("WEB_THREADS", "8")))  # type: ignore[arg-type]

# Every view is imported now rather than on the first request, and what is loaded by then stays
# out of the garbage collector's full passes (services.startup).
get_resolver().url_patterns  # noqa: B018 - imports the URLconf and its views
freeze_startup_objects()


async def application(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        if scope["path"].rstrip("/") == logtail.PATH:
            await logtail.subscribe(scope, receive, send)
        else:
            await logtail.not_found(scope, receive, send)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

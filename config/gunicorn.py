"""Gunicorn's settings for Oneoff's web process (`make run`, the Procfile, the systemd unit).

The application is ``config.asgi`` under uvicorn's worker: WebSockets (Render's live log tail,
``GET /v1/logs/subscribe``) need ASGI. HTTP still runs Django's WSGI application on threads
(``WEB_THREADS`` per process, see ``config/asgi.py``), because dashboard pages poll (htmx) and API
calls wait on the database: a few processes with several threads each serve them well. BIND,
WEB_WORKERS, WEB_THREADS and ACCESS_LOG may be set in the environment; the command line's --bind
wins.
"""

import os

bind = os.environ.get(
    "BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
)
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
timeout = 60
# Ctrl-C or a restart: requests in flight get 2 s, so `make run` stops within 3 s.
graceful_timeout = 2
# Big request bodies are refused by Django (413, REQUEST_MAX_BYTES); these bound the headers.
limit_request_line = 8190
limit_request_fields = 100
# A quiet console: warnings and errors; one line per request only when asked for.
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")
accesslog = "-" if os.environ.get("ACCESS_LOG", "").lower() in ("1", "true", "yes") else None
errorlog = "-"
# Behind a TLS-terminating proxy on the same machine, X-Forwarded-Proto is trusted from it.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

#!/usr/bin/env bash
# `make run`: migrate, make the demo workspace, then web + Celery worker + Celery beat in the
# foreground on the configured (by default embedded) database and broker. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
export SITE_URL=${SITE_URL:-http://localhost:${PORT}}  # links the API hands out (dashboardUrl)
PY=.venv/bin/python

scripts/ensure-docker.sh || echo "oneoff: continuing without a Docker Engine; jobs will wait." >&2

$PY manage.py migrate --no-input
$PY manage.py bootstrap_demo --url "http://localhost:${PORT}"

pids=()
stop() {
    trap - INT TERM EXIT
    echo; echo "oneoff: stopping ..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/celery -A config worker --loglevel=INFO --concurrency="${WORKER_CONCURRENCY:-4}" &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO &
pids+=($!)
$PY manage.py runserver --noreload "0.0.0.0:${PORT}" &
pids+=($!)

echo "oneoff: web on http://localhost:${PORT}  (Ctrl-C stops web, worker and beat)"
wait -n "${pids[@]}"

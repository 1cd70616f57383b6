#!/usr/bin/env bash
# `make run`: migrate, make the demo workspace, then web (gunicorn) + two Celery workers (jobs,
# builds) + Celery beat in the foreground on the configured (by default embedded) database and
# broker. One Ctrl-C returns within 3 s with web and beat stopped; the workers, which notice the
# signal between two 2-second waits on the broker, end by themselves seconds later (after any
# short task they are running). Jobs that are running keep running: the next start's supervisor
# follows them again.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
BIND=${BIND:-${HOST}:${PORT}}
export SITE_URL=${SITE_URL:-http://localhost:${PORT}}  # links the API hands out (dashboardUrl)
PY=.venv/bin/python

scripts/ensure-system.sh || echo "oneoff: continuing; jobs and the example build wait for what is missing." >&2

$PY manage.py migrate --no-input | grep -v '^  No migrations to apply\.$' || true
$PY manage.py bootstrap_demo --url "${SITE_URL}"

pids=()
stop() {
    trap - INT TERM EXIT
    echo; echo "oneoff: stopping ..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    # Give everything 2 s. Celery's worker notices a signal between two 2-second waits on the
    # broker, so it may finish its shutdown (and any short task it is running) after we return.
    for _ in $(seq 1 20); do
        alive=()
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        [ ${#alive[@]} -eq 0 ] && return 0
        sleep 0.1
    done
    echo "oneoff: still shutting down: pid ${alive[*]} (it exits by itself in a few seconds)"
}
trap stop INT TERM EXIT

# Two workers, one per Celery queue, each with threads of its own (config/celery.py): job starts
# and the job supervisor (WORKER_CONCURRENCY threads), and builds (BUILD_WORKER_CONCURRENCY), so
# no build can delay a job's start.
for queue in jobs builds; do
    .venv/bin/celery -A config worker -Q "$queue" -n "$queue@%h" --loglevel="${LOG_LEVEL:-INFO}" \
        --without-mingle --without-gossip &
    pids+=($!)
done
.venv/bin/celery -A config beat --loglevel="${LOG_LEVEL:-INFO}" &
pids+=($!)
.venv/bin/gunicorn config.wsgi --config config/gunicorn.py --bind "${BIND}" &
pids+=($!)

echo "oneoff: web on http://${BIND}  (Ctrl-C stops web, workers and beat)"
wait -n "${pids[@]}"

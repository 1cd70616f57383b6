#!/usr/bin/env bash
# `make run`: migrate, make the demo workspace, then web (gunicorn) + two Celery workers (jobs,
# builds) + Celery beat in the foreground on the configured (by default embedded) database and
# broker. A process that dies (crash, OOM kill, kill -9) is started again after 1 s, then 2, 4 ... up
# to 30 s while it keeps dying (back to 1 s once it has run for a minute), and the console says so.
# One Ctrl-C returns within 3 s with web and beat stopped; the workers, which notice the signal
# between two 2-second waits on the broker, end by themselves seconds later (after any short task
# they are running). Jobs that are running keep running: the next start's supervisor follows them
# again.
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

# keep NAME COMMAND...: run COMMAND, and start it again whenever it exits, after a backoff that
# doubles from 1 s to 30 s while it keeps failing and is back to 1 s after a minute of uptime.
# Runs in the background; a Ctrl-C (SIGINT to the whole process group) or stop()'s TERM makes it
# pass TERM to COMMAND, wait for COMMAND to end and end itself, without a restart.
keep() {
    local name=$1 child="" delay=1 stopping=0 started status
    shift
    trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' INT TERM
    while :; do
        started=$SECONDS
        "$@" &
        child=$!
        status=0
        wait "$child" || status=$?
        # wait returns early (status > 128) when a signal arrives; the child may still be stopping.
        while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done
        [ "$stopping" = 1 ] && exit 0
        [ $((SECONDS - started)) -ge 60 ] && delay=1
        echo "oneoff: ${name} exited (status ${status}); restarting in ${delay} s" >&2
        sleep "$delay" &
        child=$!
        wait "$child" || true
        [ "$stopping" = 1 ] && exit 0
        echo "oneoff: ${name} restarted" >&2
        delay=$((delay * 2 > 30 ? 30 : delay * 2))
    done
}

# Two workers, one per Celery queue, each with threads of its own (config/celery.py): job starts
# and the job supervisor (WORKER_CONCURRENCY threads), and builds (BUILD_WORKER_CONCURRENCY), so
# no build can delay a job's start.
for queue in jobs builds; do
    keep "${queue} worker" .venv/bin/celery -A config worker -Q "$queue" -n "$queue@%h" \
        --loglevel="${LOG_LEVEL:-INFO}" --without-mingle --without-gossip &
    pids+=($!)
done
keep beat .venv/bin/celery -A config beat --loglevel="${LOG_LEVEL:-INFO}" &
pids+=($!)
keep web .venv/bin/gunicorn config.asgi --config config/gunicorn.py --bind "${BIND}" &
pids+=($!)

echo "oneoff: web on http://${BIND}  (Ctrl-C stops web, workers and beat)"
wait "${pids[@]}"

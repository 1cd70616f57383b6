#!/usr/bin/env bash
# A three-node Docker Swarm on this one machine, to try (and test) multi-host Oneoff:
#
#   scripts/swarm-lab.sh up [--workers]   bring the lab up (idempotent: a healthy lab is kept,
#                                         anything half made is removed and made again)
#   scripts/swarm-lab.sh status           what runs; exit 0 when the lab is healthy
#   scripts/swarm-lab.sh env              the lab's variables (as `export ...` lines)
#   scripts/swarm-lab.sh workers          start the Celery workers on a lab that is up, with the
#                                         environment's DATABASE_URL etc. (tests do this)
#   scripts/swarm-lab.sh workers-down     stop them
#   scripts/swarm-lab.sh down             remove everything (idempotent)
#
# Three dockerd, each in a network namespace of its own (olab<ID>-n1..3), joined by veth pairs to
# a bridge in the root namespace. Addresses are in 198.18.<ID>.0/24 (RFC 2544's benchmarking
# range: neither the machine's nor a private range): the bridge is .1, node N is .1N. The
# namespaces have no default route, so they reach the lab subnet and nothing else. Node 1 is the
# swarm manager and also runs a registry (Debian's docker-registry) on 198.18.<ID>.11:5000,
# marked insecure in every node's flags; the busybox image (scripts/make-busybox-image.sh) is
# pushed there. PostgreSQL and Redis, which listen on 127.0.0.1 only, are reached from the
# namespaces at 198.18.<ID>.1:5432 / :6379 through two socat forwarders bound to the bridge
# address alone (their own configuration is not touched: no address but the lab's is opened).
# With --workers, each node also runs Oneoff's two Celery workers (jobs, builds) in its
# namespace, with RUNNER_HOST=nodeN, DOCKER_HOST=its engine, JOB_REGISTRY=the lab registry, and
# DATABASE_URL / CELERY_BROKER_URL / CACHE_URL (those set in the environment; 127.0.0.1 or
# localhost in them becomes the bridge address).
#
# Settings (environment): ONEOFF_LAB_ID (1-250, default 19) picks the subnet, the names and the
# folders, so two labs can run side by side; ONEOFF_LAB_WORKERS=1 is the same as --workers;
# ONEOFF_LAB_QUEUES (default "jobs builds") the workers each node runs.
# Runs as root. Needs iproute2, docker.io, docker-registry, socat, busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ID=${ONEOFF_LAB_ID:-19}
if ! [[ $ID =~ ^[0-9]+$ ]] || [ "$ID" -lt 1 ] || [ "$ID" -gt 250 ]; then
    echo "swarm-lab: ONEOFF_LAB_ID must be 1-250, not ${ID}" >&2
    exit 2
fi
NET=198.18.${ID}
HOST_ADDR=${NET}.1
BRIDGE=olab${ID}
RUN=/run/oneoff-lab-${ID}
DATA=/var/lib/oneoff-lab-${ID}
REGISTRY=${NET}.11:5000
IMAGE_REPO=${REGISTRY}/oneoff/busybox
NODES=(1 2 3)
START_TIMEOUT=30
WORKER_TIMEOUT=90  # six Celery processes starting at once on a busy 2-core machine
QUEUES=${ONEOFF_LAB_QUEUES:-jobs builds}  # the Celery queues each node's workers take

ns() { echo "olab${ID}-n$1"; }
addr() { echo "${NET}.1$1"; }
sock() { echo "${RUN}/node$1/docker.sock"; }
dk() { local n=$1; shift; docker -H "unix://$(sock "$n")" "$@"; }
say() { echo "swarm-lab: $*" >&2; }

need() {
    local missing=()
    for tool in ip dockerd docker docker-registry socat unshare; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || missing+=(busybox)
    if [ ${#missing[@]} -gt 0 ]; then
        say "missing: ${missing[*]} (apt-get install iproute2 docker.io docker-registry socat busybox-static)"
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        say "must run as root (namespaces, veth pairs, dockerd)"
        exit 1
    fi
}

# stop_all SECONDS PIDFILE...: TERM every process at once, wait up to SECONDS for them all,
# KILL what is left, remove the pid files.
stop_all() {
    local wait=$1 file pid pids=()
    shift
    for file in "$@"; do
        [ -f "$file" ] || continue
        pid=$(cat "$file" 2>/dev/null || true)
        rm -f "$file"
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for _ in $(seq 1 $((wait * 10))); do
        local left=()
        for pid in "${pids[@]}"; do running "$pid" && left+=("$pid"); done
        [ ${#left[@]} -gt 0 ] || return 0
        pids=("${left[@]}")
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

worker_pidfiles() {
    local n
    for n in "${NODES[@]}"; do echo "${RUN}/node${n}/worker-jobs.pid ${RUN}/node${n}/worker-builds.pid"; done
}

# running PID: the process runs (a zombie nobody reaped does not count: PID 1 may not reap).
running() {
    [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# alive PIDFILE: the process of a pid file runs.
alive() {
    local pid
    [ -f "$1" ] && pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && running "$pid"
}

# --------------------------------------------------------------------------------------------
down() {
    local n pids
    # shellcheck disable=SC2046
    stop_all 10 $(worker_pidfiles) "${RUN}/registry.pid" "${RUN}/forward-postgres.pid" \
        "${RUN}/forward-redis.pid"
    for n in "${NODES[@]}"; do
        # Containers first (the engine stops them; a killed engine would leave them running).
        if [ -S "$(sock "$n")" ] && timeout 5 docker -H "unix://$(sock "$n")" version >/dev/null 2>&1; then
            ids=$(timeout 10 docker -H "unix://$(sock "$n")" ps -aq 2>/dev/null || true)
            [ -z "$ids" ] || timeout 20 docker -H "unix://$(sock "$n")" rm -f $ids >/dev/null 2>&1 || true
        fi
    done
    # Everything is thrown away next: the engines get 3 s to stop, then are killed.
    stop_all 3 "${RUN}/node1/dockerd.pid.outer" "${RUN}/node2/dockerd.pid.outer" \
        "${RUN}/node3/dockerd.pid.outer"
    for n in "${NODES[@]}"; do
        if ip netns list 2>/dev/null | grep -qw "$(ns "$n")"; then
            # Whatever is left in the namespace (containerd, shims, a worker's children).
            pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
            [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
            ip netns delete "$(ns "$n")" 2>/dev/null || true
        fi
        ip link delete "olab${ID}-${n}" 2>/dev/null || true
    done
    ip link delete "$BRIDGE" 2>/dev/null || true
    # The engines' mounts (overlay layers, netns files) before their folders go.
    for dir in "$DATA" "$RUN"; do
        { grep -o " ${dir}/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r mnt; do
            umount -l "$mnt" 2>/dev/null || true
        done
    done
    rm -rf "$DATA" "$RUN"
}

# --------------------------------------------------------------------------------------------
network() {
    ip link add "$BRIDGE" type bridge
    ip addr add "${HOST_ADDR}/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for n in "${NODES[@]}"; do
        ip netns add "$(ns "$n")"
        ip link add "olab${ID}-${n}" type veth peer name "olab${ID}-${n}p"
        ip link set "olab${ID}-${n}" master "$BRIDGE" up
        ip link set "olab${ID}-${n}p" netns "$(ns "$n")"
        ip -n "$(ns "$n")" link set "olab${ID}-${n}p" name eth0
        ip -n "$(ns "$n")" addr add "$(addr "$n")/24" dev eth0
        ip -n "$(ns "$n")" link set eth0 up
        ip -n "$(ns "$n")" link set lo up
        # No default route: the lab subnet is all a node can reach.
    done
}

forwarders() {
    # PostgreSQL and Redis listen on 127.0.0.1; these relay the bridge address, and only for
    # connections that come in over the bridge (SO_BINDTODEVICE): Linux would otherwise take a
    # packet for 198.18.<ID>.1 on any interface, eth0 included.
    socat "TCP-LISTEN:5432,bind=${HOST_ADDR},so-bindtodevice=${BRIDGE},reuseaddr,fork" \
        TCP:127.0.0.1:5432 \
        >/dev/null 2>"${RUN}/forward-postgres.log" </dev/null &
    echo $! >"${RUN}/forward-postgres.pid"
    socat "TCP-LISTEN:6379,bind=${HOST_ADDR},so-bindtodevice=${BRIDGE},reuseaddr,fork" \
        TCP:127.0.0.1:6379 \
        >/dev/null 2>"${RUN}/forward-redis.log" </dev/null &
    echo $! >"${RUN}/forward-redis.pid"
}

engines() {
    local n
    for n in "${NODES[@]}"; do
        mkdir -p "${RUN}/node${n}/exec" "${DATA}/node${n}"
        echo '{}' >"${RUN}/node${n}/daemon.json"
        # A UTS namespace of its own too, so the node's hostname (the swarm's node name) is nodeN.
        nsenter --net="/run/netns/$(ns "$n")" unshare --uts sh -c "hostname node${n} && exec dockerd \
            --config-file ${RUN}/node${n}/daemon.json \
            --host unix://$(sock "$n") \
            --data-root ${DATA}/node${n} \
            --exec-root ${RUN}/node${n}/exec \
            --pidfile ${RUN}/node${n}/dockerd.pid \
            --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
            --insecure-registry ${REGISTRY} \
            --max-concurrent-downloads 3" \
            >"${RUN}/node${n}/dockerd.log" 2>&1 </dev/null &
        echo $! >"${RUN}/node${n}/dockerd.pid.outer"
    done
    for n in "${NODES[@]}"; do
        for _ in $(seq 1 $((START_TIMEOUT * 10))); do
            dk "$n" version >/dev/null 2>&1 && break
            if ! alive "${RUN}/node${n}/dockerd.pid.outer"; then
                say "dockerd of node${n} exited; its log:"; tail -n 20 "${RUN}/node${n}/dockerd.log" >&2
                return 1
            fi
            sleep 0.1
        done
        dk "$n" version >/dev/null 2>&1 || {
            say "dockerd of node${n} did not answer in ${START_TIMEOUT}s:"
            tail -n 20 "${RUN}/node${n}/dockerd.log" >&2
            return 1
        }
    done
}

swarm() {
    local n
    # Swarm's own networks in 198.19.<ID>.0/24 (not the private ranges Docker picks by default):
    # each node's docker_gwbridge made beforehand, overlays (ingress) from the address pool.
    for n in "${NODES[@]}"; do
        dk "$n" network create --driver bridge --subnet "198.19.${ID}.128/25" \
            --opt com.docker.network.bridge.name=docker_gwbridge \
            --opt com.docker.network.bridge.enable_icc=false \
            --opt com.docker.network.bridge.enable_ip_masquerade=false \
            docker_gwbridge >/dev/null
    done
    dk 1 swarm init --advertise-addr "$(addr 1)" --listen-addr "$(addr 1):2377" \
        --default-addr-pool "198.19.${ID}.0/25" --default-addr-pool-mask-length 27 >/dev/null
    local token
    token=$(dk 1 swarm join-token -q worker)
    local joins=()
    for n in 2 3; do
        dk "$n" swarm join --token "$token" --advertise-addr "$(addr "$n")" \
            --listen-addr "$(addr "$n"):2377" "$(addr 1):2377" >/dev/null &
        joins+=($!)
    done
    for pid in "${joins[@]}"; do wait "$pid"; done
    for _ in $(seq 1 $((START_TIMEOUT * 10))); do
        [ "$(dk 1 node ls --format '{{.Status}}' | grep -c Ready)" = 3 ] && return 0
        sleep 0.1
    done
    say "the three nodes did not all become Ready:"; dk 1 node ls >&2
    return 1
}

registry() {
    mkdir -p "${DATA}/registry"
    cat >"${RUN}/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${DATA}/registry
  delete:
    enabled: true
http:
  addr: ${REGISTRY}
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
EOF
    nsenter --net="/run/netns/$(ns 1)" docker-registry serve "${RUN}/registry.yml" \
        >"${RUN}/registry.log" 2>&1 </dev/null &
    echo $! >"${RUN}/registry.pid"
    for _ in $(seq 1 150); do
        nsenter --net="/run/netns/$(ns 2)" bash -c "exec 3<>/dev/tcp/${NET}.11/5000" 2>/dev/null && return 0
        sleep 0.1
    done
    say "the registry did not answer:"; tail -n 20 "${RUN}/registry.log" >&2
    return 1
}

image() {
    DOCKER_HOST="unix://$(sock 1)" ROOTFS="${RUN}/busybox-root" \
        scripts/make-busybox-image.sh "${IMAGE_REPO}:latest" >/dev/null
    rm -rf "${RUN}/busybox-root"
    dk 1 push -q "${IMAGE_REPO}:latest" >/dev/null
    dk 1 image inspect --format '{{index .RepoDigests 0}}' "${IMAGE_REPO}:latest" >"${RUN}/image"
}

# The URL in $1 with its host (127.0.0.1 or localhost) replaced by the bridge address.
over_bridge() { sed -E "s#@(127\.0\.0\.1|localhost)([:/])#@${HOST_ADDR}\2#; s#//(127\.0\.0\.1|localhost)([:/])#//${HOST_ADDR}\2#" <<<"$1"; }

workers() {
    local n queue name urls=()
    # The database, broker and cache the environment names (the project's defaults otherwise),
    # reached over the bridge when they are on this machine's loopback.
    for name in DATABASE_URL CELERY_BROKER_URL CACHE_URL; do
        [ -n "${!name:-}" ] && urls+=("${name}=$(over_bridge "${!name}")")
    done
    for n in "${NODES[@]}"; do
        for queue in $QUEUES; do
            # INFO whatever LOG_LEVEL says: the worker's " ready." line, which tells this script it
            # started, is logged at INFO.
            nsenter --net="/run/netns/$(ns "$n")" env RUNNER_HOST="node${n}" \
                DOCKER_HOST="unix://$(sock "$n")" "${urls[@]}" \
                JOB_REGISTRY="${JOB_REGISTRY:-${REGISTRY}}" \
                "${ROOT}/.venv/bin/celery" -A config worker -Q "$queue" -n "${queue}-lab${ID}@node${n}" \
                --loglevel=INFO --without-mingle --without-gossip \
                >"${RUN}/node${n}/worker-${queue}.log" 2>&1 </dev/null &
            echo $! >"${RUN}/node${n}/worker-${queue}.pid"
        done
    done
    for n in "${NODES[@]}"; do
        for queue in $QUEUES; do
            for _ in $(seq 1 $((WORKER_TIMEOUT * 10))); do
                grep -q ' ready\.' "${RUN}/node${n}/worker-${queue}.log" 2>/dev/null && break
                alive "${RUN}/node${n}/worker-${queue}.pid" || break
                sleep 0.1
            done
            grep -q ' ready\.' "${RUN}/node${n}/worker-${queue}.log" 2>/dev/null || {
                say "the ${queue} worker of node${n} did not start:"
                tail -n 20 "${RUN}/node${n}/worker-${queue}.log" >&2
                return 1
            }
        done
    done
}

env_lines() {
    cat <<EOF
export ONEOFF_LAB_ID=${ID}
export LAB_SUBNET=${NET}.0/24
export LAB_HOST_ADDR=${HOST_ADDR}
export LAB_MANAGER=unix://$(sock 1)
export LAB_NODE1=unix://$(sock 1)
export LAB_NODE2=unix://$(sock 2)
export LAB_NODE3=unix://$(sock 3)
export LAB_NETNS="$(ns 1) $(ns 2) $(ns 3)"
export LAB_REGISTRY=${REGISTRY}
export LAB_IMAGE=$(cat "${RUN}/image" 2>/dev/null)
export LAB_DATABASE_HOST=${HOST_ADDR}:5432
export LAB_REDIS_HOST=${HOST_ADDR}:6379
export DOCKER_HOST=unix://$(sock 1)
export JOB_REGISTRY=${REGISTRY}
EOF
}

healthy() {
    [ -f "${RUN}/up" ] || return 1
    alive "${RUN}/registry.pid" && alive "${RUN}/forward-postgres.pid" \
        && alive "${RUN}/forward-redis.pid" || return 1
    for n in "${NODES[@]}"; do
        alive "${RUN}/node${n}/dockerd.pid.outer" && timeout 5 docker -H "unix://$(sock "$n")" \
            version >/dev/null 2>&1 || return 1
    done
    [ "$(dk 1 node ls --format '{{.Status}} {{.Availability}}' 2>/dev/null | grep -c '^Ready')" = 3 ]
}

up() {
    local with_workers=${ONEOFF_LAB_WORKERS:-0} started=$SECONDS
    [ "${1:-}" = --workers ] && with_workers=1
    need
    if healthy; then
        say "the lab is already up"
    else
        [ -e "$RUN" ] || [ -e "$DATA" ] || ip link show "$BRIDGE" >/dev/null 2>&1 \
            && { say "removing a previous (incomplete) lab"; down; }
        mkdir -p "$RUN" "$DATA"
        chmod 0711 "$RUN"
        network
        forwarders
        engines
        registry &
        local registry_pid=$!
        swarm
        wait "$registry_pid"
        image
        env_lines >"${RUN}/env"
        touch "${RUN}/up"
        say "up in $((SECONDS - started)) s: nodes node1 (manager) node2 node3, registry ${REGISTRY}"
    fi
    if [ "$with_workers" = 1 ]; then
        if alive "${RUN}/node1/worker-jobs.pid"; then
            say "the workers are already running"
        else
            workers
            say "workers running: jobs and builds on node1, node2, node3 (logs in ${RUN}/nodeN/)"
        fi
    fi
    echo "# to use the lab:"
    env_lines
}

status() {
    local ok=0 n
    healthy || ok=1
    echo "lab ${ID}: $([ $ok = 0 ] && echo healthy || echo 'not (fully) up')  subnet ${NET}.0/24"
    for n in "${NODES[@]}"; do
        printf 'node%s  %-16s engine %-5s worker %s\n' "$n" "$(addr "$n")" \
            "$(alive "${RUN}/node${n}/dockerd.pid.outer" && echo up || echo down)" \
            "$(alive "${RUN}/node${n}/worker-jobs.pid" && echo up || echo -)"
    done
    printf 'registry %s %s\n' "$REGISTRY" "$(alive "${RUN}/registry.pid" && echo up || echo down)"
    dk 1 node ls 2>/dev/null || true
    return $ok
}

case "${1:-}" in
    up) shift; up "$@" ;;
    workers) need; healthy || { say "the lab is not up"; exit 1; }; workers ;;
    # shellcheck disable=SC2046
    workers-down) stop_all 15 $(worker_pidfiles) ;;
    down) need; down; say "down" ;;
    status) status ;;
    env) env_lines ;;
    *) echo "usage: $0 up [--workers] | status | env | workers | workers-down | down" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Makes sure a Docker Engine answers. On Debian as root it may install docker.io and start dockerd
# itself, without bridge networking (job containers use JOB_NETWORK, "none" by default).
set -u
engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if engine_answers; then exit 0; fi

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && [ "${ONEOFF_NO_DOCKER_INSTALL:-}" != 1 ]; then
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "oneoff: no Docker Engine found; installing Debian's docker.io ..."
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >/tmp/oneoff-docker-install.log 2>&1 \
            || { echo "oneoff: installing docker.io failed, see /tmp/oneoff-docker-install.log" >&2; exit 1; }
    fi
    echo "oneoff: starting dockerd (no bridge networking, log in /var/log/dockerd.log) ..."
    nohup dockerd --bridge=none --iptables=false --ip-forward=false >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then exit 0; fi
        sleep 0.5
    done
    echo "oneoff: dockerd did not answer within 30 s; last lines of /var/log/dockerd.log:" >&2
    tail -n 20 /var/log/dockerd.log >&2
    exit 1
fi

cat >&2 <<'MSG'
oneoff: no Docker Engine answers, so jobs cannot run (they stay pending until one does).
  Fix: install Docker Engine and start it (https://docs.docker.com/engine/install/),
       or point DOCKER_HOST at a running engine, e.g. DOCKER_HOST=unix:///var/run/docker.sock.
  On Debian as root: apt-get install docker.io && dockerd --bridge=none &
MSG
exit 1

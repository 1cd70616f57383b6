#!/usr/bin/env bash
# Makes sure the system parts a first run needs are here: a Docker Engine that answers, git (the
# example service is a git repository), buildah (repository builds run in it, one image store per
# workspace) and Debian's static busybox (the example's base image is made
# from it offline). On Debian as root it installs what is missing and starts dockerd itself, without
# bridge networking (job containers use JOB_NETWORK, "none" by default) and with --live-restore
# (running jobs survive a restart of the engine); otherwise it says exactly what to install.
# An engine already running without live-restore gets a warning. Exit 1 when something is still
# missing.
set -u
engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

missing=()
# A docker client alone (no dockerd) is not an engine: install Debian's when none answers.
if ! command -v dockerd >/dev/null 2>&1 && ! engine_answers; then missing+=(docker.io); fi
command -v git >/dev/null 2>&1 || missing+=(git)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)

can_install=0
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && [ "${ONEOFF_NO_SYSTEM_INSTALL:-}" != 1 ]; then
    can_install=1
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ $can_install = 1 ]; then
        echo "oneoff: installing Debian packages: ${missing[*]} ..."
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
            >/tmp/oneoff-install.log 2>&1 \
            || { echo "oneoff: installing ${missing[*]} failed, see /tmp/oneoff-install.log" >&2; exit 1; }
    else
        cat >&2 <<MSG
oneoff: missing system packages: ${missing[*]}
  Install them (as root, on Debian or Ubuntu):  apt-get install ${missing[*]}
MSG
        engine_answers || true
        exit 1
    fi
fi

warn_live_restore() {
    if [ "$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)" = false ]; then
        echo "oneoff: warning: the Docker Engine runs without live-restore, so restarting it kills" \
             "every running job; set \"live-restore\": true in /etc/docker/daemon.json" >&2
    fi
}

if engine_answers; then warn_live_restore; exit 0; fi

if [ $can_install = 1 ] && command -v dockerd >/dev/null 2>&1; then
    echo "oneoff: starting dockerd (no bridge networking, live-restore, log in /var/log/dockerd.log) ..."
    nohup dockerd --bridge=none --iptables=false --ip-forward=false --live-restore \
        >/var/log/dockerd.log 2>&1 &
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
  On Debian as root: apt-get install docker.io && dockerd --bridge=none --live-restore &
MSG
exit 1

#!/usr/bin/env bash
# Starts (or stops) a Docker engine for `npm run test:docker` on machines where none runs:
# Debian's dockerd with the vfs storage driver, which needs no kernel overlay support.
# A running dockerd loads conntrack, which slows loopback UDP: stop it before `npm run bench`.
# `stop` also removes what dockerd leaves behind (its nft tables, docker0, a swarm's docker_gwbridge), which slow loopback too.
#
# usage: scripts/docker-engine.sh start|stop
set -euo pipefail
pidfile=/tmp/framecast-dockerd.pid
case "${1:-}" in
  start)
    if docker info >/dev/null 2>&1; then echo "docker-engine: an engine is running"; exit 0; fi
    command -v dockerd >/dev/null || { echo "docker-engine: no dockerd (Debian: docker.io)" >&2; exit 2; }
    [ "$(id -u)" = 0 ] || { echo "docker-engine: dockerd needs root" >&2; exit 2; }
    nohup dockerd --storage-driver=vfs >/tmp/framecast-dockerd.log 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 60); do
      if docker info >/dev/null 2>&1; then echo "docker-engine: started (log /tmp/framecast-dockerd.log)"; exit 0; fi
      sleep 1
    done
    echo "docker-engine: dockerd did not come up; its log:" >&2
    tail -20 /tmp/framecast-dockerd.log >&2
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 1; done
      rm -f "$pidfile"
      nft delete table ip nat 2>/dev/null || true
      nft delete table ip filter 2>/dev/null || true
      ip link del docker0 2>/dev/null || true
      ip link del docker_gwbridge 2>/dev/null || true
      echo "docker-engine: stopped (its nft tables and docker0 removed)"
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Redis for the store-redis tests: one server on loopback, durable (every write fsynced).
#
#   scripts/redis.sh install   install Redis (Debian redis-server, which brings redis-cli)
#   scripts/redis.sh start     install, then start the server (idempotent); writes
#                              target/services/redis/env
#   scripts/redis.sh stop      stop the server this script started (by pid; TERM, then KILL)
#   scripts/redis.sh env       print the env file: eval "$(scripts/redis.sh env)"
#   scripts/redis.sh revive    restart the server if it died, keeping its data (its
#                              append-only file), e.g. after the fault test killed it
#
# Port (fixed, uncommon; neither Redis's 6379 nor Sentinel's 26379, so a system Redis
# started by the Debian package does not clash and is left alone): 127.0.0.1:26390.
#
# The server runs with `appendonly yes` and `appendfsync always`, so a write is on disk
# before it is acknowledged (the fault test kills the server with SIGKILL and checks that
# no acknowledged write is lost), and with no RDB snapshots (`save ""`).
#
# Data lives in target/services/redis/data/ and is wiped by every fresh start (not by
# `revive`). The pid is in target/services/redis/redis.pid. The env file exports:
#   STORE_REDIS_URL          redis://127.0.0.1:26390/
#   STORE_REDIS_SERVICE_DIR  this directory (the fault test reads redis.pid from it and
#                            runs `revive` after killing the server)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/target/services/redis"
PORT=26390
WAIT_SECS=60

log() { echo "redis.sh: $*" >&2; }

install() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        log "installing redis-server"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq redis-server >/dev/null
    fi
}

alive() { # pidfile: the process runs (a killed one may linger as a zombie until reaped)
    [ -f "$1" ] || return 1
    local pid state
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

healthy() {
    [ "$(redis-cli -h 127.0.0.1 -p $PORT ping 2>/dev/null)" = PONG ]
}

launch() {
    mkdir -p "$DIR/data"
    setsid nohup redis-server \
        --bind 127.0.0.1 \
        --port $PORT \
        --dir "$DIR/data" \
        --appendonly yes \
        --appendfsync always \
        --save "" \
        --daemonize no \
        --supervised no \
        --protected-mode yes \
        --loglevel warning \
        >"$DIR/redis.log" 2>&1 </dev/null &
    echo $! >"$DIR/redis.pid"
}

wait_healthy() {
    local deadline=$((SECONDS + WAIT_SECS))
    # `ping` answers LOADING while the append-only file is replayed; healthy means PONG.
    until healthy; do
        if ! alive "$DIR/redis.pid"; then
            log "redis-server exited while starting; its log:"
            tail -n 20 "$DIR/redis.log" >&2 || true
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "redis-server did not answer on 127.0.0.1:$PORT within ${WAIT_SECS}s; see $DIR/redis.log"
            exit 1
        fi
        sleep 0.1
    done
}

write_env() {
    {
        echo "export STORE_REDIS_URL=redis://127.0.0.1:$PORT/"
        echo "export STORE_REDIS_SERVICE_DIR=$DIR"
    } >"$DIR/env"
}

start() {
    install
    mkdir -p "$DIR"
    if alive "$DIR/redis.pid" && healthy; then
        write_env
        log "already running"
        return
    fi
    stop_all quiet
    rm -rf "$DIR/data"
    launch
    wait_healthy
    write_env
    log "redis-server on 127.0.0.1:$PORT"
}

revive() {
    if alive "$DIR/redis.pid"; then
        wait_healthy
        return
    fi
    launch
    wait_healthy
    log "revived redis-server (data kept)"
}

stop_all() { # [quiet]
    local f="$DIR/redis.pid" pid stopped=0
    if [ -f "$f" ]; then
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            stopped=1
            local n=0
            while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
                sleep 0.1
                n=$((n + 1))
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    fi
    [ "${1:-}" = quiet ] || log "stopped $stopped server(s)"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop_all ;;
    env)
        if [ -f "$DIR/env" ]; then cat "$DIR/env"; else
            log "no env file: run scripts/redis.sh start first"
            exit 1
        fi
        ;;
    revive) revive ;;
    *)
        echo "usage: $0 install|start|stop|env|revive" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# etcd for the store-etcd tests: a single node and a three-node cluster on loopback.
#
#   scripts/etcd.sh install   install etcd (Debian etcd-server, etcd-client); protoc, which
#                             etcd-client's build needs, comes from `cargo xtask` (vendored)
#   scripts/etcd.sh start     install, then start both (idempotent); writes target/services/etcd/env
#   scripts/etcd.sh stop      stop every server this script started (by pid; TERM, then KILL)
#   scripts/etcd.sh env       print the env file: eval "$(scripts/etcd.sh env)"
#   scripts/etcd.sh revive    restart cluster members that died (keeping their data), e.g.
#                             after the fault test killed one
#
# Ports (fixed, uncommon; nothing here listens on etcd's default 2379/2380, so a system
# etcd started by the Debian package does not clash and is left alone):
#   single node      client 127.0.0.1:23790   peer 127.0.0.1:23800
#   cluster m1..m3   client 127.0.0.1:23791-23793   peer 127.0.0.1:23801-23803
#
# Data lives in target/services/etcd/<name>/ and is wiped by every fresh start. Pids are in
# target/services/etcd/<name>.pid. The env file exports:
#   STORE_ETCD_ENDPOINTS          the single node
#   STORE_ETCD_CLUSTER_ENDPOINTS  the cluster's three client URLs, comma-separated
#   STORE_ETCD_SERVICE_DIR        this directory (the fault test reads m*.pid from it and
#                                 runs `revive` after killing a member)
#
# Servers accept requests up to 128 MiB (--max-request-bytes), so the backend conformance
# suite's 64 MiB object fits; store-etcd still enforces its own configurable object limit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/target/services/etcd"
SINGLE_CLIENT=23790
SINGLE_PEER=23800
MEMBERS=(m1 m2 m3)
CLUSTER_CLIENT=(23791 23792 23793)
CLUSTER_PEER=(23801 23802 23803)
MAX_REQUEST_BYTES=$((128 * 1024 * 1024))
WAIT_SECS=60

log() { echo "etcd.sh: $*" >&2; }

install() {
    local missing=()
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

alive() { # pidfile: the process runs. A zombie (killed, not yet reaped by its parent,
    # which for these servers is init and may take seconds) has exited: not alive.
    [ -f "$1" ] || return 1
    local pid state
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null || return 1
    [ -r "/proc/$pid/stat" ] || return 0
    state="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    state="${state##*) }"
    [ "${state:0:1}" != Z ] && [ "${state:0:1}" != X ]
}

healthy() { # client-port
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$1" --command-timeout=2s \
        endpoint health >/dev/null 2>&1
}

cluster_spec() {
    local spec="" i
    for i in 0 1 2; do
        spec+="${spec:+,}${MEMBERS[$i]}=http://127.0.0.1:${CLUSTER_PEER[$i]}"
    done
    echo "$spec"
}

# launch NAME CLIENT PEER INITIAL_CLUSTER STATE TOKEN [extra args]
launch() {
    local name=$1 client=$2 peer=$3 initial=$4 state=$5 token=$6
    shift 6
    mkdir -p "$DIR/$name"
    setsid nohup etcd \
        --name "$name" \
        --data-dir "$DIR/$name/data" \
        --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$initial" \
        --initial-cluster-state "$state" \
        --initial-cluster-token "$token" \
        --max-request-bytes "$MAX_REQUEST_BYTES" \
        --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
        --auto-compaction-mode revision \
        --auto-compaction-retention 100000 \
        --logger zap --log-level warn \
        "$@" \
        >"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
}

wait_healthy() { # name client-port
    local deadline=$((SECONDS + WAIT_SECS))
    until healthy "$2"; do
        if ! alive "$DIR/$1.pid"; then
            log "$1 exited while starting; its log:"
            tail -n 20 "$DIR/$1.log" >&2 || true
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "$1 did not answer on 127.0.0.1:$2 within ${WAIT_SECS}s; see $DIR/$1.log"
            exit 1
        fi
        sleep 0.2
    done
}

write_env() {
    local cluster="" i
    for i in 0 1 2; do cluster+="${cluster:+,}http://127.0.0.1:${CLUSTER_CLIENT[$i]}"; done
    {
        echo "export STORE_ETCD_ENDPOINTS=http://127.0.0.1:$SINGLE_CLIENT"
        echo "export STORE_ETCD_CLUSTER_ENDPOINTS=$cluster"
        echo "export STORE_ETCD_SERVICE_DIR=$DIR"
    } >"$DIR/env"
}

running() { # everything alive and answering?
    alive "$DIR/single.pid" && healthy $SINGLE_CLIENT || return 1
    local i
    for i in 0 1 2; do
        alive "$DIR/${MEMBERS[$i]}.pid" && healthy "${CLUSTER_CLIENT[$i]}" || return 1
    done
}

start() {
    install
    mkdir -p "$DIR"
    if running; then
        write_env
        log "already running"
        return
    fi
    stop_all quiet
    rm -rf "$DIR/single" "${MEMBERS[@]/#/$DIR/}"
    launch single $SINGLE_CLIENT $SINGLE_PEER "single=http://127.0.0.1:$SINGLE_PEER" new store-etcd-single
    local i spec
    spec="$(cluster_spec)"
    for i in 0 1 2; do
        # Short heartbeats and elections, so the fault test's failover takes well under a second.
        launch "${MEMBERS[$i]}" "${CLUSTER_CLIENT[$i]}" "${CLUSTER_PEER[$i]}" "$spec" new store-etcd-cluster \
            --heartbeat-interval 50 --election-timeout 500
    done
    wait_healthy single $SINGLE_CLIENT
    for i in 0 1 2; do wait_healthy "${MEMBERS[$i]}" "${CLUSTER_CLIENT[$i]}"; done
    write_env
    log "single node on 127.0.0.1:$SINGLE_CLIENT, cluster on 127.0.0.1:${CLUSTER_CLIENT[0]}-${CLUSTER_CLIENT[2]}"
}

revive() {
    local i spec
    spec="$(cluster_spec)"
    for i in 0 1 2; do
        local m=${MEMBERS[$i]}
        if ! alive "$DIR/$m.pid"; then
            # Rejoin with the member's existing data: "existing" state, same cluster.
            launch "$m" "${CLUSTER_CLIENT[$i]}" "${CLUSTER_PEER[$i]}" "$spec" existing store-etcd-cluster \
                --heartbeat-interval 50 --election-timeout 500
            wait_healthy "$m" "${CLUSTER_CLIENT[$i]}"
            log "revived $m"
        fi
    done
}

stop_all() { # [quiet]
    local f pid stopped=()
    shopt -s nullglob
    for f in "$DIR"/*.pid; do
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            stopped+=("$pid")
        fi
        rm -f "$f"
    done
    for pid in "${stopped[@]}"; do
        local n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
            sleep 0.1
            n=$((n + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ "${1:-}" = quiet ] || log "stopped ${#stopped[@]} server(s)"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop_all ;;
    env)
        if [ -f "$DIR/env" ]; then cat "$DIR/env"; else
            log "no env file: run scripts/etcd.sh start first"
            exit 1
        fi
        ;;
    revive) revive ;;
    *)
        echo "usage: $0 install|start|stop|env|revive" >&2
        exit 2
        ;;
esac

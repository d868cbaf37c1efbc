# lib.sh: shared harness for Kiln's integration tests.
#
# Each test sources this file, which makes a private directory, and offers
# helpers to start a real redis-server (unix socket), a real coordinator on
# a free 127.0.0.1 port and real workers, each with CURVE keys made by
# `kiln keygen`. Every process started is remembered by pid and stopped on
# exit, whatever happens to the test.
set -euo pipefail

KILN_BIN=${KILN_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}/bin
KILN_SRC=${KILN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KILN=$KILN_BIN/kiln
T=$(mktemp -d /tmp/kiln-it.XXXXXX)
PIDS=()
TEST_NAME=$(basename "$0" .sh)
# In a sanitizer build (make asan-test) every process writes its reports
# here, the daemons' exit-time leak checks included; any report fails the
# test, whatever the processes' exit codes.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/sanitizer"

cleanup() {
    local rc=$?
    if declare -F test_cleanup >/dev/null; then test_cleanup || true; fi
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    local deadline=$((SECONDS + 10))
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local reports
    reports=$(grep -l "ERROR: \|runtime error:" "$T"/sanitizer.* 2>/dev/null || true)
    if [ -n "$reports" ]; then
        echo "FAIL: sanitizer reports:" >&2
        for f in $reports; do head -n 60 "$f" >&2; done
        [ $rc -eq 0 ] || [ $rc -eq 77 ] && rc=1
    fi
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        echo "--- $TEST_NAME failed (exit $rc); logs:" >&2
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# A TCP port nobody listens on (bash's /dev/tcp refuses if free), below the
# kernel's ephemeral range (32768 and up here), where outgoing connections
# of parallel tests would otherwise take it between this check and a bind.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return 0; fi
    done
    fail "no free port"
}

start_redis() {
    redis-server --port 0 --unixsocket "$T/redis.sock" --unixsocketperm 700 --dir "$T" \
        --save '' --appendonly yes --appendfsync everysec --daemonize no >"$T/redis.log" 2>&1 &
    PIDS+=($!)
    REDIS_PID=$!
}

redis() { redis-cli -s "$T/redis.sock" "$@"; }

# Keys: server, client, and the allow-list directories.
make_keys() {
    mkdir -p "$T/keys" "$T/allow/workers" "$T/allow/clients"
    "$KILN" keygen server --dir "$T/keys" >/dev/null
    "$KILN" keygen client --dir "$T/keys" >/dev/null
    cp "$T/keys/client.pub" "$T/allow/clients/"
    export KILN_SERVER_KEY=$T/keys/server.pub KILN_CLIENT_KEY=$T/keys/client.key
}

# admit_worker NAME: a key pair for the worker, admitted by the allow-list.
admit_worker() {
    "$KILN" keygen "$1" --dir "$T/keys" >/dev/null
    cp "$T/keys/$1.pub" "$T/allow/workers/"
}

# Clients in tests give up after 5 s rather than 15, so that a wait loop
# around a dead coordinator ends soon.
export KILN_REQUEST_TIMEOUT_MS=${KILN_REQUEST_TIMEOUT_MS:-5000}

# start_coordinator [extra flags]: binds a fresh 127.0.0.1 port (or $PORT),
# and returns once it listens. A port taken meanwhile by a parallel test is
# replaced by another.
start_coordinator() {
    local fixed=${PORT:-} tries=0
    while :; do
        PORT=${fixed:-$(free_port)}
        ENDPOINT=tcp://127.0.0.1:$PORT
        export KILN_COORDINATOR=$ENDPOINT
        local mark
        mark=$({ wc -l <"$T/coordinator.log"; } 2>/dev/null || echo 0)
        "$KILN_BIN/kiln-coordinator" --listen "$ENDPOINT" --redis "$T/redis.sock" \
            --db "$T/history.db" --key "$T/keys/server.key" --allow "$T/allow" \
            --log-level "${COORD_LOG_LEVEL:-debug}" "$@" >>"$T/coordinator.log" 2>&1 &
        COORD_PID=$!
        PIDS+=($COORD_PID)
        for _ in $(seq 1 400); do
            tail -n +"$((mark + 1))" "$T/coordinator.log" | grep -q "listening on" && return 0
            kill -0 "$COORD_PID" 2>/dev/null || break
            sleep 0.025
        done
        tries=$((tries + 1))
        if [ -z "$fixed" ] && [ $tries -lt 5 ] && tail -n +"$((mark + 1))" "$T/coordinator.log" | grep -q "cannot bind"; then
            continue
        fi
        fail "the coordinator did not start: $(tail -n 3 "$T/coordinator.log")"
    done
}

# start_worker NAME [extra flags]: key NAME.key, workspace under $T/work.
start_worker() {
    local name=$1
    shift
    mkdir -p "$T/work"
    "$KILN_BIN/kiln-worker" --coordinator "${WORKER_ENDPOINT:-$ENDPOINT}" \
        --server-key "$T/keys/server.pub" --key "$T/keys/$name.key" --name "$name" \
        --work-dir "$T/work/$name" "$@" >>"$T/$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# wait_workers N: until N workers are registered (bounded).
wait_workers() {
    local want=$1 n=0 until=$((SECONDS + 20))
    while [ $SECONDS -lt $until ]; do
        n=$("$KILN" workers --json 2>/dev/null | grep -c '"name"' || true)
        [ "$n" -ge "$want" ] && return 0
        kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator died"
        sleep 0.05
    done
    fail "only $n of $want workers registered"
}

# engine_conf: this machine's podman settings (runc, ulimits within what the
# host allows: see README, Container jobs) in $T/containers.conf, exported
# as CONTAINERS_CONF for the test's own podman and buildah calls and the
# workers it starts.
engine_conf() {
    cat >"$T/containers.conf" <<'CONF'
[containers]
default_ulimits=["nofile=20000:20000","nproc=32768:32768"]
[engine]
runtime="runc"
cgroup_manager="cgroupfs"
events_logger="file"
CONF
    export CONTAINERS_CONF=$T/containers.conf
}

# json_get FILE EXPR: a value from a JSON file, read by jq-less sqlite3.
json_get() { sqlite3 :memory: "select json_extract(readfile('$1'), '$2');"; }

# Standard farm: redis, keys, coordinator and N admitted workers.
start_farm() {
    local n=$1
    shift
    start_redis
    make_keys
    for i in $(seq 1 "$n"); do admit_worker "w$i"; done
    start_coordinator
    for i in $(seq 1 "$n"); do start_worker "w$i" "$@"; done
    wait_workers "$n"
}

# A git server on 127.0.0.1 for the repositories under DIR: git daemon
# (GIT_PORT, git://) and git's smart HTTP through githttp.py (HTTP_PORT,
# http://), both remembered by pid.
start_git_servers() {
    local dir=$1
    GIT_PORT=$(free_port)
    git daemon --reuseaddr --export-all --base-path="$dir" --listen=127.0.0.1 \
        --port="$GIT_PORT" "$dir" >>"$T/gitdaemon.log" 2>&1 &
    PIDS+=($!)
    HTTP_PORT=$(free_port)
    python3 "$KILN_SRC/tests/integration/githttp.py" "$dir" "$HTTP_PORT" >>"$T/githttp.log" 2>&1 &
    PIDS+=($!)
    local until=$((SECONDS + 20))
    until (exec 3<>/dev/tcp/127.0.0.1/$GIT_PORT) 2>/dev/null &&
        (exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT) 2>/dev/null; do
        [ $SECONDS -lt $until ] || fail "the git servers did not start: $(tail -n 3 "$T"/git*.log)"
        sleep 0.05
    done
}

# git with a fixed identity, for commits the tests make.
tgit() { git -c user.name=Tester -c user.email=tester@example.com -c init.defaultBranch=main \
    -c protocol.file.allow=always "$@"; }

#!/usr/bin/env bash
# b_checkout.sh: actions/checkout on a worker, against git itself. A
# repository of FILES files (default 10,000, in 100 directories) served by
# git daemon on 127.0.0.1, and a farm of one worker; figures in ms, median
# of REPS:
#   checkout_git_clone   `git clone --depth 1` into an empty directory, on
#                        the worker's file system (a runner without a cache)
#   checkout_cold        the checkout step of a job on a worker that has
#                        never seen the repository (its mirror takes the
#                        whole history, then the tree is written)
#   checkout_warm        the checkout step of the next job, for a new commit
#                        (one file changed), on the same worker: a fetch of
#                        that commit's few objects, and the work tree the
#                        last job left brought to the new commit
#   checkout_warm_x      checkout_git_clone / checkout_warm (target >= 5)
# Step times are the worker's own (the step's start and end in the
# history). Measured twice: with the worker's directory and the clone on
# the disk (where a worker's WORK_DIR is; on this kind of machine the page
# cache is given back to the host, so creating files there is slow and
# varies severalfold from minute to minute, for git and Kiln alike), and on
# a tmpfs (rows *_tmpfs: file creation at memory speed, the hardest case
# for the warm checkout, which still stats every file).
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-10000}
SHM=
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    SHM=$(mktemp -d /dev/shm/kiln-bench.XXXXXX)
    test_cleanup() { rm -rf "$SHM"; }
fi
SRV=$T/srv
mkdir -p "$SRV/acme"
tgit init -q "$T/big"
(
    cd "$T/big"
    for d in $(seq 1 100); do
        mkdir -p "d$d"
        for f in $(seq 1 $((FILES / 100))); do echo "file $d/$f" >"d$d/f$f.txt"; done
    done
    mkdir -p .github/workflows
    cat >.github/workflows/co.yml <<'YML'
name: co
on: push
jobs:
  co:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: test -f d100/f1.txt
YML
)
tgit -C "$T/big" add -A && tgit -C "$T/big" commit -qm "the tree"
tgit clone -q --bare "$T/big" "$SRV/acme/big.git"
start_git_servers "$SRV"
URL=git://127.0.0.1:$GIT_PORT/acme/big.git

start_redis
make_keys
start_coordinator
# step_ms: the checkout step's time in the last run.
step_ms() {
    "$KILN" status "$1" --json >"$T/st.json"
    json_get "$T/st.json" '$.jobs[0].steps[0].duration_ms'
}
run_once() { # the run's number on stdout
    "$KILN" submit --repo "$URL" --ref main --wait >"$T/run.out" 2>&1 ||
        fail "the checkout job failed: $(tail -n 5 "$T/run.out")"
    grep -oE '^run [0-9]+' "$T/run.out" | head -n 1 | cut -d' ' -f2
}

# measure FS SUFFIX: the rows for one file system.
n_worker=0
measure() {
local FS=$1 sfx=$2
local clone=() cold=() warm=() r name wpid c k w
for r in $(seq 1 "$REPS"); do
    rm -rf "$FS/clone"
    t0=$(ms)
    git clone -q --depth 1 "$URL" "$FS/clone"
    clone+=($(($(ms) - t0)))
    [ "$(find "$FS/clone" -name '*.txt' | wc -l)" -eq "$FILES" ] || fail "git clone did not write the tree"

    # A worker that has never seen the repository.
    n_worker=$((n_worker + 1))
    name=w$n_worker
    admit_worker "$name"
    kill -HUP "$COORD_PID"
    "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
        --key "$T/keys/$name.key" --name "$name" --work-dir "$FS/work-$name" >>"$T/$name.log" 2>&1 &
    wpid=$!
    PIDS+=($wpid)
    wait_workers 1
    cold+=($(step_ms "$(run_once)"))

    # A new commit; the worker has the one before.
    echo "change $r" >>"$T/big/d1/f1.txt"
    tgit -C "$T/big" commit -qam "change $r"
    tgit -C "$T/big" push -q "$SRV/acme/big.git" HEAD:main
    warm+=($(step_ms "$(run_once)"))
    grep -q "an earlier job's, brought to this commit" "$T/run.out" ||
        fail "the warm checkout did not reuse the work tree: $(grep -iE 'work tree|fetched' "$T/run.out")"
    grep -qE "Fetched .*: [1-9][0-9]? objects" "$T/run.out" ||
        fail "the warm checkout fetched more than the new commit: $(grep -i fetched "$T/run.out")"
    kill -TERM "$wpid"
    wait "$wpid" 2>/dev/null || true
    rm -rf "$FS/work-$name"
    until [ "$("$KILN" workers --json | grep -c '"name"')" = 0 ]; do sleep 0.05; done
done
c=$(printf '%s\n' "${clone[@]}" | median)
k=$(printf '%s\n' "${cold[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)
echo "${sfx:-disk}: git clone --depth 1: ${clone[*]} ms; cold: ${cold[*]} ms; warm: ${warm[*]} ms" >&2
row "checkout_git_clone$sfx" "$c" ms
row "checkout_cold$sfx" "$k" ms
row "checkout_warm$sfx" "$w" ms
if [ -z "$sfx" ]; then
    row checkout_warm_x "$(awk -v a="$c" -v b="$w" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')" x 5 ">="
else
    row "checkout_warm_x$sfx" "$(awk -v a="$c" -v b="$w" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')" x
fi
}
measure "$T" ""
[ -z "$SHM" ] || measure "$SHM" _tmpfs

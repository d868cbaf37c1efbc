#!/usr/bin/env bash
# b_cache.sh: actions/cache and the artifact actions on the farm's store,
# against tar itself. A dependency tree of FILES files (default 10,000 in
# 100 directories, about MB megabytes, default 100; base64 text, so it
# compresses as source and packages do) made once; a farm of two workers
# per file system (warm and cold). Figures, median of REPS:
#   tar_zstd_c / tar_zstd_x   `tar --zstd -cf` of the tree / `-xf` into an
#                             empty directory, on the workers' file system
#   cache_save                the post step saving the tree (pack, hash,
#                             upload, record), on w1
#   cache_restore_local       the cache step of the next job on w1: the
#                             lookup, its copy checked by digest, unpacked
#   cache_restore_remote      the same on w2, which has never seen it: the
#                             blob fetched from the coordinator first
#   cache_restore_local_mbs / _files_s  the tree's bytes and files per
#                             second of cache_restore_local
#   cache_restore_vs_tar_x    tar_zstd_x / cache_restore_local (target >= 1:
#                             restoring from the worker's cache is no slower
#                             than tar --zstd -xf of the same tree)
#   artifact_roundtrip        upload-artifact of the tree on w1 plus
#                             download-artifact of it on w2
# Step times are the worker's own (the history's start and end of a step).
# Measured on the disk (where a worker's WORK_DIR is; creating files there
# is slow on this kind of machine and varies severalfold from minute to
# minute, for tar and Kiln alike) and on a tmpfs (rows *_tmpfs: file
# creation at memory speed, so what Kiln adds to tar's work shows).
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-10000}
MB=${MB:-100}
SRC=$T/src/deps
mkdir -p "$SRC"
# One stream of text cut into FILES pieces across 100 directories.
head -c $((MB * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 0 >"$T/stream"
split -n $FILES -a 5 -d "$T/stream" "$T/src/piece-"
i=0
for f in "$T"/src/piece-*; do
    d=$SRC/d$((i % 100))
    [ -d "$d" ] || mkdir -p "$d"
    mv "$f" "$d/f$i"
    i=$((i + 1))
done
rm -f "$T/stream"
BYTES=$(du -sb "$SRC" | cut -f1)
echo "tree: $FILES files, $BYTES bytes" >&2

SHM=
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    SHM=$(mktemp -d /dev/shm/kiln-bench.XXXXXX)
    test_cleanup() { rm -rf "$SHM"; }
fi
start_redis
make_keys
start_coordinator

cat >"$T/cache.yml" <<YML
on: {workflow_dispatch: {inputs: {key: {required: true}, pool: {required: true}}}}
jobs:
  a:
    runs-on: [linux, "\${{ inputs.pool }}"]
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          path: deps
          key: \${{ inputs.key }}
      - run: '[ -d deps ] || cp -a "$SRC" deps'
YML
cat >"$T/art.yml" <<YML
on: {workflow_dispatch: {inputs: {warm: {required: true}, cold: {required: true}}}}
jobs:
  up:
    runs-on: [linux, "\${{ inputs.warm }}"]
    steps:
      - run: cp -a "$SRC" deps
      - uses: actions/upload-artifact@v4
        with: {name: deps, path: deps, compression-level: 3}
  down:
    needs: up
    runs-on: [linux, "\${{ inputs.cold }}"]
    steps:
      - uses: actions/download-artifact@v4
        with: {name: deps, path: got}
      - run: test "\$(find got -type f | wc -l)" = $FILES
YML
# step_ms RUN JOB STEP: a step's time in a run.
step_ms() {
    "$KILN" status "$1" --json >"$T/st.json"
    sqlite3 :memory: "select json_extract(j.value, '\$.duration_ms') from json_each(json_extract(readfile('$T/st.json'), '\$.jobs')) as j0, json_each(json_extract(j0.value, '\$.steps')) as j where json_extract(j0.value, '\$.id') = '$2' and json_extract(j.value, '\$.index') = $3 and json_extract(j.value, '\$.attempt') = 1"
}
submit() { # FILE [inputs...]: the run's number
    "$KILN" submit --wait "$@" >"$T/run.out" 2>&1 || fail "the run of $1 failed: $(tail -n 8 "$T/run.out")"
    "$KILN" history --limit 1 --json >"$T/h.json"
    json_get "$T/h.json" '$[0].id'
}
start_pool_worker() { # NAME LABEL DIR
    admit_worker "$1"
    kill -HUP "$COORD_PID"
    "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
        --key "$T/keys/$1.key" --name "$1" --labels "$2" --work-dir "$3/work-$1" >>"$T/$1.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# measure FS SUFFIX: the rows for one file system (the workers' directories
# and tar's, both there; each timed step after a sync, so neither pays for
# the other's writes).
measure() {
local FS=$1 sfx=$2 r run
local saves=() locals=() remotes=() tc=() tx=() arts=() pw pc
start_pool_worker "warm$sfx" "warm$sfx" "$FS"
pw=$LAST_PID
start_pool_worker "cold$sfx" "cold$sfx" "$FS"
pc=$LAST_PID
wait_workers 2
for r in $(seq 1 "$REPS"); do
    rm -rf "$FS/x" "$FS/t.tar.zst"
    sync
    t0=$(ms)
    tar --zstd -cf "$FS/t.tar.zst" -C "$T/src" deps
    tc+=($(($(ms) - t0)))
    mkdir "$FS/x"
    sync
    t0=$(ms)
    tar --zstd -xf "$FS/t.tar.zst" -C "$FS/x"
    tx+=($(($(ms) - t0)))
    rm -rf "$FS/x" "$FS/t.tar.zst"

    run=$(submit "$T/cache.yml" --input key="deps$sfx-$r" --input pool="warm$sfx")
    grep -q "Cache saved with key: deps$sfx-$r" "$T/run.out" || fail "run $run did not save: $(grep -i cache "$T/run.out")"
    saves+=($(step_ms "$run" a 2))
    sync
    run=$(submit "$T/cache.yml" --input key="deps$sfx-$r" --input pool="warm$sfx")
    grep -q "Cache restored from key: deps$sfx-$r (.*from this worker's cache" "$T/run.out" ||
        fail "run $run did not restore from the worker: $(grep -i cache "$T/run.out")"
    locals+=($(step_ms "$run" a 0))
    sync
    run=$(submit "$T/cache.yml" --input key="deps$sfx-$r" --input pool="cold$sfx")
    grep -q "Cache restored from key: deps$sfx-$r (.*from the coordinator" "$T/run.out" ||
        fail "run $run did not restore from the coordinator: $(grep -i cache "$T/run.out")"
    remotes+=($(step_ms "$run" a 0))
    run=$(submit "$T/art.yml" --input warm="warm$sfx" --input cold="cold$sfx")
    arts+=($(($(step_ms "$run" up 1) + $(step_ms "$run" down 0))))
done
kill -TERM "$pw" "$pc"
wait "$pw" "$pc" 2>/dev/null || true
rm -rf "$FS/work-warm$sfx" "$FS/work-cold$sfx"
until [ "$("$KILN" workers --json | grep -c '"name"')" = 0 ]; do sleep 0.05; done
echo "${sfx:-disk}: tar -c: ${tc[*]}; tar -x: ${tx[*]}; save: ${saves[*]}; local: ${locals[*]}; remote: ${remotes[*]}; artifact: ${arts[*]} (ms)" >&2
local C X S L R A
C=$(printf '%s\n' "${tc[@]}" | median)
X=$(printf '%s\n' "${tx[@]}" | median)
S=$(printf '%s\n' "${saves[@]}" | median)
L=$(printf '%s\n' "${locals[@]}" | median)
R=$(printf '%s\n' "${remotes[@]}" | median)
A=$(printf '%s\n' "${arts[@]}" | median)
row "tar_zstd_c$sfx" "$C" ms
row "tar_zstd_x$sfx" "$X" ms
row "cache_save$sfx" "$S" ms
row "cache_restore_local$sfx" "$L" ms
row "cache_restore_remote$sfx" "$R" ms
row "cache_restore_local_mbs$sfx" "$(awk -v b="$BYTES" -v t="$L" 'BEGIN {printf "%.0f", (t > 0 ? b / 1048576 / (t / 1000) : 0)}')" MB/s
row "cache_restore_local_files_s$sfx" "$(awk -v n="$FILES" -v t="$L" 'BEGIN {printf "%.0f", (t > 0 ? n / (t / 1000) : 0)}')" files/s
row "cache_restore_vs_tar_x$sfx" "$(awk -v a="$X" -v b="$L" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')" x 1 ">="
row "artifact_roundtrip$sfx" "$A" ms
}
measure "$T" ""
[ -z "$SHM" ] || measure "$SHM" _tmpfs

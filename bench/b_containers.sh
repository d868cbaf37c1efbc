#!/usr/bin/env bash
# b_containers.sh: starting a container, natively and through podman. A
# busybox image built with buildah and pushed to a docker-registry on
# 127.0.0.1. Figures (median of REPS, the warm ones of 5 x REPS):
#   native_start_cold_ms    `kiln-image run IMAGE -- true` on an empty store:
#                           manifest, config and layer fetched and verified,
#                           the root built, the overlay mounted, the sandbox
#                           run
#   native_start_warm_ms    the same with the image held (target <= 20)
#   podman_run_ms           `podman run --rm IMAGE true`, the image local
#   podman_over_native      podman_run_ms / native_start_warm_ms (target >= 5)
#   job_step_host_ms        a job's one `run: true` step on the host, as the
#                           history times it (the shell and the worker's own
#                           work around a step)
#   job_step_native_cold_ms the same step in a native container job whose
#                           worker has never pulled the image
#   job_step_native_warm_ms ... on the next job, the image held
#   job_step_podman_ms      ... through podman (the container started by
#                           the step; its removal after the job not counted)
source "$(dirname "$0")/lib.sh"
command -v docker-registry >/dev/null && command -v buildah >/dev/null && command -v podman >/dev/null &&
    command -v bwrap >/dev/null && [ -x /bin/busybox ] || skip "docker-registry, buildah, podman, bubblewrap or busybox-static is missing"
engine_conf
us() { echo "${EPOCHREALTIME/./}"; }
REG_PORT=$(free_port)
REG=127.0.0.1:$REG_PORT
IMAGE=$REG/kiln-bench/bb:$$
test_cleanup() {
    podman rm -f $(podman ps -aq --filter "label=kiln.worker=bp-$$") >/dev/null 2>&1
    buildah rmi -f "$IMAGE" >/dev/null 2>&1
    podman rmi -f "$IMAGE" >/dev/null 2>&1
    true
}
mkdir -p "$T/registry"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$T/registry" "$REG" >"$T/registry.yml"
docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
C=$(buildah from scratch) && buildah copy "$C" /bin/busybox /bin/busybox >/dev/null &&
    buildah run "$C" -- /bin/busybox --install -s /bin >/dev/null &&
    buildah commit -q "$C" "$IMAGE" >/dev/null && buildah rm "$C" >/dev/null &&
    buildah push -q --tls-verify=false "$IMAGE" >/dev/null 2>&1 || fail "cannot build and push the image"

K=$KILN_BIN/kiln-image
cold=() warm=() pod=()
for r in $(seq 1 "$REPS"); do
    rm -rf "$T/store"
    t0=$(us)
    "$K" run --store "$T/store" --state "$T/state-c$r" --hold h "$IMAGE" -- true >/dev/null || fail "kiln-image run (cold)"
    cold+=($((($(us) - t0) / 1000)))
done
for r in $(seq 1 $((REPS * 5))); do
    t0=$(us)
    "$K" run --store "$T/store" --state "$T/state-w$r" --hold h "$IMAGE" -- true >/dev/null || fail "kiln-image run (warm)"
    warm+=($((($(us) - t0) / 1000)))
done
podman run --rm "$IMAGE" true >/dev/null 2>&1 || fail "podman cannot run the image here"
for r in $(seq 1 "$REPS"); do
    t0=$(us)
    podman run --rm "$IMAGE" true >/dev/null 2>&1 || fail "podman run"
    pod+=($((($(us) - t0) / 1000)))
done
# Sub-millisecond resolution for the ratio: the warm start again in us.
warm_us=()
for r in $(seq 1 $((REPS * 5))); do
    t0=$(us)
    "$K" run --store "$T/store" --state "$T/state-u$r" --hold h "$IMAGE" -- true >/dev/null
    warm_us+=($(($(us) - t0)))
done
pod_us=()
for r in $(seq 1 "$REPS"); do
    t0=$(us)
    podman run --rm "$IMAGE" true >/dev/null 2>&1
    pod_us+=($(($(us) - t0)))
done
W_US=$(printf '%s\n' "${warm_us[@]}" | median)
P_US=$(printf '%s\n' "${pod_us[@]}" | median)
row native_start_cold_ms "$(printf '%s\n' "${cold[@]}" | median)" ms
row native_start_warm_ms "$(printf '%s\n' "${warm[@]}" | median)" ms 20 "<="
row podman_run_ms "$(printf '%s\n' "${pod[@]}" | median)" ms
row podman_over_native "$(awk -v p="$P_US" -v w="$W_US" 'BEGIN {printf "%.1f", p / w}')" x 5 ">="

# Through the farm: a step's own time, as the history records it.
start_redis
make_keys
start_coordinator
for w in bh bn bp; do admit_worker "$w-$$"; done
kill -HUP "$COORD_PID"
start_worker "bh-$$" --labels host-pool
start_worker "bn-$$" --labels native-pool --container-runtime native
start_worker "bp-$$" --labels podman-pool --container-runtime engine
wait_workers 3
step_ms() { # RUN: the first step's duration
    "$KILN" status "$1" --json >"$T/st.json"
    sqlite3 :memory: "select json_extract(j.value, '\$.duration_ms') from json_each(json_extract(readfile('$T/st.json'), '\$.jobs')) as j0, json_each(json_extract(j0.value, '\$.steps')) as j where json_extract(j.value, '\$.index') = 0 and json_extract(j.value, '\$.attempt') = 1"
}
job() { # POOL [IMAGE]: the step's ms
    if [ -n "${2:-}" ]; then
        printf 'on: push\njobs:\n  a:\n    runs-on: %s\n    container: %s\n    steps:\n      - run: "true"\n' "$1" "$2" >"$T/j.yml"
    else
        printf 'on: push\njobs:\n  a:\n    runs-on: %s\n    steps:\n      - run: "true"\n' "$1" >"$T/j.yml"
    fi
    "$KILN" submit --wait "$T/j.yml" >"$T/j.out" 2>&1 || fail "the $1 job failed: $(tail -n 5 "$T/j.out")"
    "$KILN" history --limit 1 --json >"$T/h.json"
    step_ms "$(json_get "$T/h.json" '$[0].id')"
}
host=() ncold=() nwarm=() jpod=()
for r in $(seq 1 "$REPS"); do
    host+=($(job host-pool))
    rm -rf "$T/work/bn-$$/images"
    ncold+=($(job native-pool "$IMAGE"))
    nwarm+=($(job native-pool "$IMAGE"))
    jpod+=($(job podman-pool "$IMAGE"))
done
row job_step_host_ms "$(printf '%s\n' "${host[@]}" | median)" ms
row job_step_native_cold_ms "$(printf '%s\n' "${ncold[@]}" | median)" ms
row job_step_native_warm_ms "$(printf '%s\n' "${nwarm[@]}" | median)" ms
row job_step_podman_ms "$(printf '%s\n' "${jpod[@]}" | median)" ms

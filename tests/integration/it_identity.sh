# A worker is its key. A valid key that claims another worker's name is
# refused, naming both keys; a second process with a key already connected
# is refused while the first lives, and gets in once it is gone; two
# workers of one host started without --name get their keys' names; drain
# acts on the worker named; and no storm of duplicate, impostor and
# reconnecting connections can bring the coordinator down.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
for w in w1 w2 w3 w4; do admit_worker "$w"; done
start_coordinator --heartbeat-ms 200 --lease-ms 3000
# worker LOG KEY [flags]: a worker process, by key, with its own workspace.
worker() {
    local log=$1 key=$2
    shift 2
    mkdir -p "$T/work"
    "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
        --key "$T/keys/$key.key" --work-dir "$T/work/$log" --heartbeat-ms 200 "$@" >>"$T/$log.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}
names() {
    "$KILN" workers --json >"$T/workers.json" || return 1
    sqlite3 :memory: "select group_concat(json_extract(value, '\$.name') || '=' || json_extract(value, '\$.key'), ' ') from (select value from json_each(readfile('$T/workers.json')) order by json_extract(value, '\$.name'))"
}
wait_log() { # FILE PATTERN
    for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    fail "no '$2' in $1: $(tail -n 5 "$1")"
}

worker w1 w1
W1=$LAST_PID
worker w2 w2
wait_workers 2
worker impostor w2 --name w1
IMPOSTOR=$LAST_PID
wait_log "$T/impostor.log" "refused this worker"
pubkey() { sed -n 's/.*public-key = "\(.*\)"/\1/p' "$T/keys/$1.pub"; }
K1=$(pubkey w1) K2=$(pubkey w2) KC=$(pubkey client)
grep -qF "worker key 'w2' ($K2) claims the name 'w1', which is the name of the worker of key 'w1' ($K1)" "$T/coordinator.log" ||
    fail "the refusal does not name both keys: $(grep refused "$T/coordinator.log")"
[ "$(names)" = "w1=w1 w2=w2" ] || fail "workers: $(names)"
cat >"$T/wf.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: self-hosted
    strategy:
      matrix:
        n: [1, 2, 3, 4]
    steps: [{run: echo "ran on $RUNNER_NAME"}]
YML
run=$("$KILN" submit --wait "$T/wf.yml" | sed -n 's/^run \([0-9]*\) .*/\1/p' | tail -n 1)
[ -n "$run" ] || fail "the run did not finish"
[ "$(sqlite3 "$T/history.db" "select count(*) from attempts where worker not in ('w1','w2')")" = 0 ] ||
    fail "an attempt went elsewhere: $(sqlite3 "$T/history.db" 'select worker from attempts')"
kill "$IMPOSTOR"
pass "a key claiming another worker's name is refused, naming both keys; it got no job"

# History, audit and kiln workers show the key itself, not only its name.
[ "$(sqlite3 "$T/history.db" "select count(*) from attempts where run_id = $run and not ((worker = 'w1' and worker_key = '$K1') or (worker = 'w2' and worker_key = '$K2'))")" = 0 ] ||
    fail "attempts do not carry their worker's key: $(sqlite3 "$T/history.db" "select worker, worker_key from attempts where run_id = $run")"
[ "$(sqlite3 "$T/history.db" "select actor_key from audit where kind = 'run.submit' order by id desc limit 1")" = "$KC" ] ||
    fail "the audit row does not carry the client's key: $(sqlite3 "$T/history.db" "select * from audit")"
"$KILN" status "$run" --json >"$T/st.json"
case "$(json_get "$T/st.json" '$.jobs[0].attempts[0].worker_key')" in "$K1" | "$K2") ;; *) fail "status has no worker_key: $(cat "$T/st.json")" ;; esac
"$KILN" workers --json >"$T/workers.json"
[ "$(sqlite3 :memory: "select json_extract(value, '\$.public_key') from json_each(readfile('$T/workers.json')) where json_extract(value, '\$.name') = 'w1'")" = "$K1" ] ||
    fail "kiln workers --json: $(cat "$T/workers.json")"
"$KILN" workers | grep -qF "$K1" || fail "kiln workers does not show the key: $("$KILN" workers)"
pass "attempts, audit rows, kiln status and kiln workers carry the public key"

worker dup w1
DUP=$LAST_PID
wait_log "$T/dup.log" "refused this worker"
grep -q "worker 'w1' is connected already from" "$T/coordinator.log" || fail "no reason for the duplicate"
kill -0 "$W1" || fail "the real w1 died"
pass "a second process with w1's key is refused while w1 lives"
kill -9 "$W1"
wait "$W1" 2>/dev/null || true
wait_log "$T/dup.log" "registered with the coordinator as w1"
pass "once w1 is gone, the second process with its key gets in"

"$KILN" worker drain w2 >/dev/null || fail "drain w2 failed"
wait_log "$T/w2.log" "draining"
grep -q "draining" "$T/dup.log" && fail "drain w2 drained the worker of key w1"
pass "kiln worker drain w2 drained w2 and only it"

worker w3 w3
worker w4 w4
for _ in $(seq 1 100); do
    case " $(names) " in *" w3=w3 "*" w4=w4 "* | *" w4=w4 "*" w3=w3 "*) break ;; esac
    sleep 0.05
done
case " $(names) " in *" w3=w3 "*) ;; *) fail "w3 did not register as w3: $(names)" ;; esac
case " $(names) " in *" w4=w4 "*) ;; *) fail "w4 did not register as w4: $(names)" ;; esac
pass "two workers of one host without --name are their keys' names"

# A storm: duplicates of live keys, impostors, and processes killed as soon
# as they connect, 40 in all.
for i in $(seq 1 40); do
    case $((i % 4)) in
    0) worker storm$i w3 ;;
    1) worker storm$i w4 --name w3 ;;
    2) worker storm$i w2 --name nobody ;;
    3) worker storm$i w1 ;;
    esac
    p=$LAST_PID
    [ $((i % 2)) -eq 0 ] && kill -9 $p 2>/dev/null
    sleep 0.02
done
sleep 1
kill -0 "$COORD_PID" || fail "the coordinator died in the storm"
"$KILN" submit --wait "$T/wf.yml" >"$T/after.out" 2>&1 || fail "a run after the storm failed: $(cat "$T/after.out")"
pass "the coordinator came through 40 duplicate, impostor and killed connections and serves runs"

# The history's write-ahead log stays bounded while the farm runs: 6,000
# jobs through the null executor wrote about 66 MB of WAL that was folded
# into the database only at shutdown; the checkpoint thread now keeps it
# near 16 MB (coordinator/history.h: KILN_HISTORY_WAL_BOUND_MB), and the
# database grows while the farm runs.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
{
    printf 'name: wal\non: push\njobs:\n'
    for i in $(seq 1 1000); do printf '  j%d:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i"; done
} >"$T/wide.yml"
start_redis
make_keys
admit_worker w1
start_coordinator
for _ in $(seq 1 6); do "$KILN" submit "$T/wide.yml" >/dev/null || fail "submit failed"; done
start_worker w1 --executor null --slots 32 --log-level warn
wal_max=0
for _ in $(seq 1 400); do
    wal=$(stat -c %s "$T/history.db-wal" 2>/dev/null || echo 0)
    [ "$wal" -gt "$wal_max" ] && wal_max=$wal
    [ "$(sqlite3 -cmd '.timeout 2000' "$T/history.db" "select count(*) from runs where finished_ms is null")" = 0 ] && break
    sleep 0.05
done
[ "$(sqlite3 -cmd '.timeout 2000' "$T/history.db" "select count(*) from runs where state = 'success'")" = 6 ] ||
    fail "the runs did not finish"
mb=$((wal_max / 1048576))
[ "$mb" -lt 32 ] || fail "the WAL reached $mb MB"
db=$(stat -c %s "$T/history.db")
[ "$db" -gt 524288 ] || fail "the database is $db bytes while the farm runs: nothing was checkpointed"
pass "6,000 jobs: the WAL peaked at $mb MB, and the database holds $((db / 1024)) KB while the farm runs"

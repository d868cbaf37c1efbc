# A job's processes end with the job. A step starts a daemon that leaves
# its process group and session (setsid -f, re-parented to init), which
# would write into the next job's recycled workspace two seconds later. The
# job's end kills it, before the slot's workspace is handed on: the next
# job (another workflow's run) sees nothing of it, and nothing of it is
# alive.
source "$(dirname "$0")/lib.sh"
start_farm 1
grep -q "kept in the cgroup" "$T/w1.log" || skip "no writable cgroup here: $(grep -i cgroup "$T/w1.log")"
MARK=kiln-orphan-$$
cat >"$T/daemon.yml" <<YML
name: daemon
on: push
jobs:
  leave:
    runs-on: self-hosted
    steps:
      - run: |
          setsid -f bash -c 'exec -a $MARK-a sleep 30' </dev/null >/dev/null 2>&1
          setsid -f bash -c 'cd "\$GITHUB_WORKSPACE"; sleep 1.5; echo from-the-daemon > planted; echo alive >> $T/ledger' </dev/null >/dev/null 2>&1
          setsid -f bash -c 'setsid -f bash -c "exec -a $MARK-b sleep 30"; sleep 30' </dev/null >/dev/null 2>&1
          sleep 0.3
          pgrep -f $MARK- >/dev/null && echo "daemons started"
YML
cat >"$T/next.yml" <<'YML'
name: next
on: push
jobs:
  look:
    runs-on: self-hosted
    steps:
      - run: |
          sleep 2.5
          if [ -e planted ]; then echo "FOUND A FILE FROM ANOTHER JOB"; exit 1; fi
          echo "clean workspace"
YML
"$KILN" submit --wait "$T/daemon.yml" >"$T/d.out" 2>&1 || fail "the daemon job failed: $(cat "$T/d.out")"
pgrep -f "$MARK-" >/dev/null && fail "processes of the job outlived it: $(pgrep -af "$MARK-")"
grep -q "killed [0-9]* process" "$T/w1.log" || fail "the worker did not say it killed what the job left"
pass "the job's daemons (setsid -f, double-forked) were killed at its end: $(grep -o 'killed [0-9]* process[a-z]*' "$T/w1.log" | head -n 1)"
"$KILN" submit --wait "$T/next.yml" >"$T/n.out" 2>&1 || fail "the next job saw the daemon's work: $(cat "$T/n.out")"
[ ! -e "$T/ledger" ] || fail "the daemon lived on: $(cat "$T/ledger")"
pass "the next job in the slot got a clean workspace, and the daemon never woke"

# Two slots: what one job leaves is killed at its end, and a process another
# job (still running, in the other slot) started is not.
admit_worker w2
kill -HUP "$COORD_PID"
w1=$(pgrep -f -- "--work-dir $T/work/w1" | head -n 1)
kill -TERM "$w1"
for _ in $(seq 1 100); do kill -0 "$w1" 2>/dev/null || break; sleep 0.05; done
start_worker w2 --slots 2
for _ in $(seq 1 100); do "$KILN" workers --json | grep -q '"w2"' && break; sleep 0.05; done
"$KILN" workers --json | grep -q '"w2"' || fail "w2 did not register"
cat >"$T/two.yml" <<YML
name: two
on: push
jobs:
  short:
    runs-on: self-hosted
    steps:
      - run: |
          setsid -f bash -c 'exec -a $MARK-short sleep 30' </dev/null >/dev/null 2>&1
          sleep 0.5
  long:
    runs-on: self-hosted
    steps:
      - run: |
          setsid -f bash -c 'exec -a $MARK-long sleep 30' </dev/null >/dev/null 2>&1
          sleep 2
          pgrep -f $MARK-long >/dev/null && echo "my daemon lives"
YML
"$KILN" submit --wait "$T/two.yml" >"$T/two.out" 2>&1 || fail "the two-job run failed: $(cat "$T/two.out")"
grep -q "my daemon lives" "$T/two.out" || fail "the short job's end killed the long job's daemon: $(cat "$T/two.out")"
pgrep -f "$MARK-" >/dev/null && fail "something outlived its job: $(pgrep -af "$MARK-")"
pass "two slots: each job's leftovers were killed at its own end, not at the other's"

# No writable cgroup (an unprivileged worker, a container without
# delegation; here a --cgroup-root that does not exist): the worker is its
# steps' child subreaper instead, so the daemons re-parent to it, not to
# init, and are killed and reaped at the job's end all the same.
admit_worker w3
kill -HUP "$COORD_PID"
w2=$(pgrep -f -- "--work-dir $T/work/w2" | head -n 1)
kill -TERM "$w2"
for _ in $(seq 1 100); do kill -0 "$w2" 2>/dev/null || break; sleep 0.05; done
start_worker w3 --cgroup-root "$T/no-such-cgroup"
W3=$LAST_PID
for _ in $(seq 1 100); do "$KILN" workers --json | grep -q '"w3"' && break; sleep 0.05; done
grep -q "child subreaper" "$T/w3.log" || fail "w3 did not fall back to a subreaper: $(head -n 3 "$T/w3.log")"
rm -f "$T/ledger"
"$KILN" submit --wait "$T/daemon.yml" >"$T/d3.out" 2>&1 || fail "the daemon job failed on w3: $(cat "$T/d3.out")"
grep -q "daemons started" "$T/d3.out" || fail "the daemons did not start (the test proved nothing)"
pgrep -f "$MARK-" >/dev/null && fail "without a cgroup, processes of the job outlived it: $(pgrep -af "$MARK-")"
grep -q "killed [0-9]* process" "$T/w3.log" || fail "w3 did not say it killed what the job left"
"$KILN" submit --wait "$T/next.yml" >"$T/n3.out" 2>&1 || fail "the next job saw the daemon's work: $(cat "$T/n3.out")"
[ ! -e "$T/ledger" ] || fail "the daemon lived on under the subreaper: $(cat "$T/ledger")"
zombies=$(ps -o stat= --ppid "$W3" | grep -c Z || true)
[ "$zombies" = 0 ] || fail "w3 left $zombies zombies: $(ps -o pid,stat,cmd --ppid "$W3")"
pass "without a cgroup: the subreaper killed and reaped the job's daemons ($(grep -o 'killed [0-9]* process[a-z]*' "$T/w3.log" | head -n 1))"

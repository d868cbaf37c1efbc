# Workflow-level concurrency, farm-wide: in a group one run runs and one
# waits; a newer run supersedes the waiting one; another group is not
# affected; with cancel-in-progress the running one is cancelled.
source "$(dirname "$0")/lib.sh"
start_farm 3
LEDGER=$T/ledger
cat >"$T/deploy.yml" <<YML
name: deploy
on:
  workflow_dispatch:
    inputs:
      target: {type: string, default: prod}
      tag: {type: string, default: x}
concurrency:
  group: deploy-\${{ inputs.target }}
jobs:
  ship:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start \${{ inputs.tag }}" >> $LEDGER
          sleep 1.5
          echo "done \${{ inputs.tag }}" >> $LEDGER
YML
state() { "$KILN" status "$1" --json >"$T/s.json" && json_get "$T/s.json" '$.state'; }
wait_state() {
    for _ in $(seq 1 150); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done
    fail "run $1 is $(state "$1"), want $2"
}
a=$("$KILN" submit "$T/deploy.yml" --input tag=A)
for _ in $(seq 1 100); do grep -q '^start A' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
b=$("$KILN" submit "$T/deploy.yml" --input tag=B)
c=$("$KILN" submit "$T/deploy.yml" --input tag=C)
d=$("$KILN" submit "$T/deploy.yml" --input tag=D --input target=staging)
wait_state "$b" cancelled
pass "B, waiting in the group, was superseded by C"
for _ in $(seq 1 100); do grep -q '^start D' "$LEDGER" && break; sleep 0.05; done
grep -q '^start D' "$LEDGER" || fail "D (another group) did not start"
grep -q '^done A' "$LEDGER" && fail "D should have started while A still ran"
pass "D, in another group, ran at once"
wait_state "$a" success
wait_state "$c" success
grep -q '^start B' "$LEDGER" && fail "B ran"
awk '/^done A/ {a=NR} /^start C/ {c=NR} END {exit !(a && c && a < c)}' "$LEDGER" ||
    fail "C started before A finished: $(cat "$LEDGER")"
pass "C started only after A finished"
sed -i 's/^  group: deploy-\${{ inputs.target }}$/  group: fast-\${{ inputs.target }}\n  cancel-in-progress: true/' "$T/deploy.yml"
e=$("$KILN" submit "$T/deploy.yml" --input tag=E)
for _ in $(seq 1 100); do grep -q '^start E' "$LEDGER" && break; sleep 0.05; done
f=$("$KILN" submit "$T/deploy.yml" --input tag=F)
wait_state "$e" cancelled
wait_state "$f" success
grep -q '^done E' "$LEDGER" && fail "E finished despite cancel-in-progress"
pass "cancel-in-progress: E was cancelled for F"

# Job-level concurrency: jobs of different runs share a group; one runs,
# a newer one supersedes the one waiting.
cat >"$T/jobs.yml" <<YML
name: jobgroup
on:
  workflow_dispatch:
    inputs:
      tag: {type: string, default: x}
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo "build \${{ inputs.tag }}"
  release:
    needs: build
    runs-on: self-hosted
    concurrency: release-lock
    steps:
      - run: |
          echo "start release \${{ inputs.tag }}" >> $LEDGER
          sleep 1.5
          echo "done release \${{ inputs.tag }}" >> $LEDGER
YML
p=$("$KILN" submit "$T/jobs.yml" --input tag=P)
for _ in $(seq 1 100); do grep -q '^start release P' "$LEDGER" && break; sleep 0.05; done
q=$("$KILN" submit "$T/jobs.yml" --input tag=Q)
sleep 0.5
r=$("$KILN" submit "$T/jobs.yml" --input tag=R)
wait_state "$p" success
wait_state "$q" cancelled
wait_state "$r" success
grep -q '^start release Q' "$LEDGER" && fail "Q's release ran"
awk '/^done release P/ {a=NR} /^start release R/ {c=NR} END {exit !(a && c && a < c)}' "$LEDGER" ||
    fail "R's release started while P's ran: $(cat "$LEDGER")"
pass "job-level group: P's release ran, Q's was superseded by R's, R's waited for P's"

# Two jobs of one run in one group: the second waits for the first, as
# between runs (it used to be cancelled without ever running).
cat >"$T/same.yml" <<YML
name: same-run
on: push
jobs:
  deploy:
    runs-on: self-hosted
    concurrency: one-at-a-time
    strategy:
      matrix:
        env: [staging, production]
    steps:
      - run: |
          echo "start \${{ matrix.env }}" >> $LEDGER
          sleep 0.5
          echo "done \${{ matrix.env }}" >> $LEDGER
YML
s=$("$KILN" submit "$T/same.yml")
wait_state "$s" success
awk '/^start staging/ {a=NR} /^done staging/ {b=NR} /^start production/ {c=NR} /^done production/ {d=NR}
     END {exit !(a && b && c && d && ((b < c) || (d < a)))}' "$LEDGER" ||
    fail "the two jobs of one group overlapped: $(cat "$LEDGER")"
pass "job-level group within one run: both jobs ran, one after the other"

# A call of a reusable workflow in a group holds it while its called
# workflow runs: the two calls of one group run one after the other, each
# called workflow whole, and cancel-in-progress on a call stops the called
# workflow that holds the group.
mkdir -p "$T/repo/.git" "$T/repo/.github/workflows"
cat >"$T/repo/.github/workflows/deploy.yml" <<YML
on:
  workflow_call:
    inputs:
      env: {type: string, required: true}
jobs:
  ship:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start call \${{ inputs.env }}" >> $LEDGER
          sleep 0.6
          echo "done call \${{ inputs.env }}" >> $LEDGER
  verify:
    needs: ship
    runs-on: self-hosted
    steps:
      - run: echo "verify call \${{ inputs.env }}" >> $LEDGER
YML
cat >"$T/repo/.github/workflows/ci.yml" <<YML
name: calls
on: push
jobs:
  staging:
    concurrency: deploy-calls
    uses: ./.github/workflows/deploy.yml
    with: {env: staging}
  production:
    concurrency: deploy-calls
    uses: ./.github/workflows/deploy.yml
    with: {env: production}
YML
c=$("$KILN" submit "$T/repo/.github/workflows/ci.yml")
wait_state "$c" success
awk '/^start call staging/ {a=NR} /^verify call staging/ {b=NR} /^start call production/ {c=NR} /^verify call production/ {d=NR}
     END {exit !(a && b && c && d && ((b < c) || (d < a)))}' "$LEDGER" ||
    fail "two calls of one group overlapped: $(cat "$LEDGER")"
pass "calls of a reusable workflow in one group ran one after the other, each called workflow whole"

cat >"$T/repo/.github/workflows/cancel.yml" <<YML
name: calls-cancel
on:
  workflow_dispatch:
    inputs:
      env: {type: string, default: x}
jobs:
  deploy:
    concurrency:
      group: cancel-calls
      cancel-in-progress: true
    uses: ./.github/workflows/deploy.yml
    with:
      env: \${{ inputs.env }}
YML
g=$("$KILN" submit "$T/repo/.github/workflows/cancel.yml" --input env=G)
for _ in $(seq 1 100); do grep -q '^start call G' "$LEDGER" && break; sleep 0.05; done
grep -q '^start call G' "$LEDGER" || fail "G's called workflow never started"
h=$("$KILN" submit "$T/repo/.github/workflows/cancel.yml" --input env=H)
wait_state "$h" success
wait_state "$g" cancelled
grep -q '^verify call G' "$LEDGER" && fail "G's called workflow went on after it was cancelled"
grep -q '^verify call H' "$LEDGER" || fail "H's called workflow did not run whole"
pass "cancel-in-progress on a call stopped the called workflow holding the group"

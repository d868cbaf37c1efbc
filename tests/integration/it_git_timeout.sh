# A frozen git server: it takes the connection and never answers (as a
# server whose disk hangs does). The coordinator's fetch gives up after
# --git-timeout-s, fails that submission naming the server, and meanwhile
# serves everything else, a repository that answers included; a worker's
# checkout from it fails its step the same way (kiln-worker
# --git-timeout-s); nothing waits for ever.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
SRV=$T/srv
mkdir -p "$SRV/acme"

# Accepts, reads, never writes; held by pid like every process here.
SILENT=$(free_port)
python3 - "$SILENT" >"$T/silent.log" 2>&1 <<'PY' &
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    threading.Thread(target=lambda c=c: [c.recv(65536) for _ in iter(int, 1)], daemon=True).start()
PY
PIDS+=($!)
until (exec 3<>"/dev/tcp/127.0.0.1/$SILENT") 2>/dev/null; do sleep 0.05; done

W=$T/app
tgit init -q "$W"
mkdir -p "$W/.github/workflows"
cat >"$W/.github/workflows/ci.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - run: echo answered
YML
tgit -C "$W" add -A && tgit -C "$W" commit -qm first
tgit clone -q --bare "$W" "$SRV/acme/app.git"
start_git_servers "$SRV"

start_redis
make_keys
admit_worker w1
start_coordinator --git-timeout-s 2
start_worker w1 --git-timeout-s 2
wait_workers 1

# 1. The frozen server's submission fails after the timeout, naming it;
# the one behind it in the fetch queue and other requests are served.
RC=0
"$KILN" submit --repo "git://127.0.0.1:$SILENT/acme/app.git" --ref main >"$T/frozen.out" 2>&1 &
FROZEN=$!
PIDS+=($FROZEN)
"$KILN" workers --json >/dev/null || fail "the coordinator did not answer while a fetch hung"
RC2=0
"$KILN" submit --wait --repo "git://127.0.0.1:$GIT_PORT/acme/app.git" --ref main >"$T/live.out" 2>&1 || RC2=$?
wait "$FROZEN" || RC=$?
[ $RC = 3 ] && grep -q "127.0.0.1:$SILENT: no answer in 2 s" "$T/frozen.out" ||
    fail "the frozen server's submission: exit $RC: $(cat "$T/frozen.out")"
[ $RC2 = 0 ] && grep -q "answered" "$T/live.out" || fail "the submission behind the frozen fetch: exit $RC2: $(tail -n 3 "$T/live.out")"
pass "a frozen git server fails its submission after --git-timeout-s, naming it; the coordinator serves the rest meanwhile"

# 2. Smart HTTP to the same server: the same.
RC=0
"$KILN" submit --repo "http://127.0.0.1:$SILENT/acme/app.git" --ref main >"$T/frozen_http.out" 2>&1 || RC=$?
[ $RC = 3 ] && grep -q "127.0.0.1:$SILENT: no answer in 2 s" "$T/frozen_http.out" ||
    fail "the frozen HTTP server's submission: exit $RC: $(cat "$T/frozen_http.out")"
pass "over HTTP as well"

# 3. A worker's checkout from it: the step fails, naming the server.
cat >"$T/co.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
        with:
          repository: acme/other
      - run: echo after
        if: always()
YML
# The run's origin is on the frozen server, so acme/other is looked for there.
tgit -C "$W" remote add origin "git://127.0.0.1:$SILENT/acme/app.git"
cp "$T/co.yml" "$W/co.yml"
RC=0
(cd "$W" && "$KILN" submit --wait co.yml) >"$T/co.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "127.0.0.1:$SILENT: no answer in 2 s" "$T/co.out" && grep -q "^a | after" "$T/co.out" ||
    fail "a checkout from the frozen server: exit $RC: $(tail -n 8 "$T/co.out")"
pass "a worker's checkout from a frozen server fails its step after --git-timeout-s; the job goes on"

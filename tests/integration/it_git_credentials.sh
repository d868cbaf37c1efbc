# The farm's git credentials: private repositories on a smart HTTP server
# (127.0.0.1) that wants a token. The coordinator reads the run's workflows
# and the worker checks out (the run's repository and another private one)
# with the token from --git-credentials, which never shows in a log, the
# history or the work tree; without it the fetch fails naming the URL; a
# file others can read, or a bad line, stops the daemon naming the file
# and line but not the secret.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
SECRET=kiln-test-secret-$RANDOM$RANDOM
export GITHTTP_TOKEN=$SECRET
SRV=$T/srv
mkdir -p "$SRV/private"

L=$T/lib
tgit init -q "$L"
echo private-lib >"$L/lib.txt"
tgit -C "$L" add -A && tgit -C "$L" commit -qm "lib: first"
tgit clone -q --bare "$L" "$SRV/private/lib.git"
A=$T/app
tgit init -q "$A"
mkdir -p "$A/.github/workflows"
cat >"$A/.github/workflows/ci.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - uses: actions/checkout@v4
        with:
          repository: private/lib
          path: lib
      - run: |
          echo "app $(cat app.txt) lib $(cat lib/lib.txt)"
          git config --get-regexp 'extraheader' || echo "no credentials kept"
          git -C lib config --get-regexp 'extraheader' || echo "no credentials kept in lib"
YML
echo app >"$A/app.txt"
tgit -C "$A" add -A && tgit -C "$A" commit -qm "app: first"
tgit clone -q --bare "$A" "$SRV/private/app.git"
start_git_servers "$SRV"
REPO=http://127.0.0.1:$HTTP_PORT/private/app.git

CREDS=$T/creds
printf '# the farm'"'"'s logins\nhttp://127.0.0.1:%s/private/ token %s\n' "$HTTP_PORT" "$SECRET" >"$CREDS"
chmod 600 "$CREDS"

# 1. A file others can read, and a bad line, are refused by name.
start_redis
make_keys
admit_worker w1
chmod 644 "$CREDS"
RC=0
timeout 20 "$KILN_BIN/kiln-coordinator" --listen "tcp://127.0.0.1:$(free_port)" --redis "$T/redis.sock" \
    --db "$T/x.db" --key "$T/keys/server.key" --allow "$T/allow" --git-credentials "$CREDS" >"$T/open.out" 2>&1 || RC=$?
[ $RC != 0 ] && grep -q "$CREDS must be a regular file only its owner can read" "$T/open.out" ||
    fail "a credentials file others can read was taken (exit $RC): $(cat "$T/open.out")"
chmod 600 "$CREDS"
printf 'http://127.0.0.1/ password %s\n' "$SECRET" >"$T/bad"
chmod 600 "$T/bad"
mkdir -p "$T/work"
RC=0
timeout 20 "$KILN_BIN/kiln-worker" --coordinator tcp://127.0.0.1:1 --server-key "$T/keys/server.pub" \
    --key "$T/keys/w1.key" --name w1 --work-dir "$T/work/bad" --git-credentials "$T/bad" >"$T/bad.out" 2>&1 || RC=$?
[ $RC != 0 ] && grep -q "$T/bad:1: want 'URL-PREFIX token TOKEN'" "$T/bad.out" ||
    fail "a bad credentials line was taken (exit $RC): $(cat "$T/bad.out")"
! grep -q "$SECRET" "$T/bad.out" || fail "the refusal printed the secret"
pass "a credentials file others can read, and a bad line, stop the daemon naming file and line, not the secret"

# 2. With the credentials: the coordinator fetches, the worker checks out both.
start_coordinator --git-credentials "$CREDS"
start_worker w1 --git-credentials "$CREDS"
W1_PID=$LAST_PID
wait_workers 1
RC=0
"$KILN" submit --wait --repo "$REPO" --ref main >"$T/run.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the private repository's run exited $RC: $(grep -E 'error|cannot' "$T/run.out" | head -n 5)"
grep -q "app app lib private-lib" "$T/run.out" || fail "the checkouts: $(grep -E 'app|lib' "$T/run.out" | head)"
grep -q "^a | no credentials kept$" "$T/run.out" && grep -q "^a | no credentials kept in lib$" "$T/run.out" ||
    fail "the farm's token was left in a work tree: $(grep -iE 'extraheader|credentials' "$T/run.out")"
for f in "$T/run.out" "$T/coordinator.log" "$T/w1.log" "$T/history.db" "$T/githttp.log"; do
    ! grep -qa "$SECRET" "$f" || fail "the secret is in $f"
done
! grep -rqa "$SECRET" "$T/work/w1" || fail "the secret is in the worker's directory: $(grep -rla "$SECRET" "$T/work/w1")"
pass "private repositories: the coordinator's fetch and both checkouts authenticate from the farm's file; the token is nowhere"

# 3. A repository the file has no login for fails, naming it.
tgit clone -q --bare "$A" "$SRV/private/other.git"
sed -i "s|/private/ token|/private/app token|" "$CREDS"
kill -INT "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator --git-credentials "$CREDS"
RC=0
"$KILN" submit --repo "http://127.0.0.1:$HTTP_PORT/private/other.git" --ref main >"$T/noauth.out" 2>&1 || RC=$?
[ $RC = 3 ] && grep -q "cannot fetch http://127.0.0.1:$HTTP_PORT/private/other.git" "$T/noauth.out" ||
    fail "a repository without a login: exit $RC: $(cat "$T/noauth.out")"
pass "a repository the credentials do not cover fails, naming its URL"

# 4. A step's own token (with: token) is used where the farm has none, and
# kept in the work tree for later git commands, as GitHub's checkout does.
# (w1 is back with the coordinator, restarted on the same port.)
wait_workers 1
cat >"$A/.github/workflows/own.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
        with:
          repository: private/lib
          token: $SECRET
      - run: |
          cat lib.txt
          git config --get-regexp extraheader >/dev/null && echo "credentials kept" || echo "BAD: none kept"
          git fetch -q origin && echo "a later git fetch authenticates"
YML
tgit -C "$A" add -A && tgit -C "$A" commit -qm "app: own token"
tgit -C "$A" push -q "$SRV/private/app.git" main
RC=0
"$KILN" submit --wait --repo "$REPO" --ref main --workflow .github/workflows/own.yml >"$T/own.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "a checkout with its own token exited $RC: $(tail -n 12 "$T/own.out")"
grep -q "^a | private-lib$" "$T/own.out" && grep -q "credentials kept" "$T/own.out" &&
    grep -q "a later git fetch authenticates" "$T/own.out" || fail "the step's token: $(tail -n 8 "$T/own.out")"
! grep -q "$SECRET" "$T/own.out" || fail "the step's token is in the run's output"
pass "a step's own token checks out what the farm's file does not cover, and stays for later git commands, never printed"

# 5. ssh, where the machine has an sshd to serve it (openssh-server is not
# among Kiln's dependencies: installing it starts a system ssh server). The
# farm's key logs in; the host key is checked against ~/.ssh/known_hosts.
if [ ! -x /usr/sbin/sshd ]; then
    echo "SKIP (part): no /usr/sbin/sshd here; the ssh logins are not exercised"
    exit 0
fi
SSHD_PORT=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$T/ssh_host" && ssh-keygen -q -t ed25519 -N '' -f "$T/ssh_client"
cp "$T/ssh_client.pub" "$T/authorized_keys"
cat >"$T/sshd_config" <<CFG
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $T/ssh_host
AuthorizedKeysFile $T/authorized_keys
PidFile $T/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$T/sshd_config" -E "$T/sshd.log" &
PIDS+=($!)
until (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null; do sleep 0.05; done
mkdir -p "$T/home/.ssh"
echo "[127.0.0.1]:$SSHD_PORT $(cat "$T/ssh_host.pub")" >"$T/home/.ssh/known_hosts"
SSH_URL=ssh://$(id -un)@127.0.0.1:$SSHD_PORT$SRV/private/app.git
printf 'ssh://%s@127.0.0.1:%s/ ssh-key %s\n' "$(id -un)" "$SSHD_PORT" "$T/ssh_client" >"$T/ssh_creds"
chmod 600 "$T/ssh_creds"
cat >"$A/.github/workflows/ssh.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: echo "over ssh $(cat app.txt) at $(git rev-parse HEAD)"
YML
tgit -C "$A" add -A && tgit -C "$A" commit -qm "app: ssh"
tgit -C "$A" push -q "$SRV/private/app.git" main
kill -INT "$COORD_PID" "$W1_PID"
wait "$COORD_PID" "$W1_PID" 2>/dev/null || true
admit_worker w2
# Under ASan: libgit2's own ssh leaks, and only those (see the file); whole
# stacks, so the suppressions can see libgit2's frames; kiln-checkout gets
# the same through the worker's --pass-env.
export LSAN_OPTIONS=suppressions=$KILN_SRC/tests/integration/lsan-libgit2-ssh.supp
export ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0
HOME=$T/home start_coordinator --git-credentials "$T/ssh_creds"
HOME=$T/home start_worker w2 --git-credentials "$T/ssh_creds" --pass-env ASAN_OPTIONS \
    --pass-env LSAN_OPTIONS
RC=0
"$KILN" submit --wait --repo "$SSH_URL" --ref main --workflow .github/workflows/ssh.yml >"$T/ssh.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "over ssh app at $(tgit -C "$A" rev-parse HEAD)" "$T/ssh.out" && grep -q "Fetched ssh://" "$T/ssh.out" ||
    fail "the ssh run: exit $RC: $(grep -E 'error|Fetched|cannot|over ssh' "$T/ssh.out" | head -n 5)"
pass "ssh: the coordinator's fetch and the checkout log in with the farm's key, the host checked against known_hosts"

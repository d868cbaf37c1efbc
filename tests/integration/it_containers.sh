# Container jobs (jobs.<id>.container) through podman: an image built here
# with buildah from busybox-static (no registry needed); every run step in
# it, the workspace at the same path (files and GITHUB_OUTPUT cross), the
# container's env and the step's; services reached by name or mapped port;
# Docker actions (a Dockerfile's, docker://); a container started once per job and
# removed when the job ends: after success, after a failure, after a
# cancel; an image that is not there fails the job saying so; privileged
# options and host mounts refused; a worker with no engine says why;
# kiln-worker --check; a pool's default job image (--job-image).
source "$(dirname "$0")/lib.sh"
command -v podman >/dev/null && command -v buildah >/dev/null && [ -x /bin/busybox ] ||
    skip "podman, buildah or busybox-static is not installed (make deps installs them)"
# This machine's hybrid cgroups need runc and lower ulimits than podman's
# defaults (see README, Container jobs): the same containers.conf for the
# tests' own podman calls and the worker's.
engine_conf
IMAGE=localhost/kiln-it-busybox:$$
C=$(buildah from scratch 2>"$T/buildah.err") && buildah copy "$C" /bin/busybox /bin/busybox >/dev/null &&
    buildah run "$C" -- /bin/busybox --install -s /bin >/dev/null 2>>"$T/buildah.err" &&
    mkdir -p "$T/etc" && echo "kiln-it-image" >"$T/etc/image-name" && buildah copy "$C" "$T/etc/image-name" /etc/image-name >/dev/null &&
    buildah commit -q "$C" "$IMAGE" >/dev/null 2>>"$T/buildah.err" && buildah rm "$C" >/dev/null ||
    skip "buildah cannot build an image here: $(tail -n 3 "$T/buildah.err")"
# A service image: busybox's httpd serving /www.
SVC_IMAGE=localhost/kiln-it-httpd:$$
C=$(buildah from "$IMAGE" 2>>"$T/buildah.err") && mkdir -p "$T/www" && echo "hello from the service" >"$T/www/i" &&
    buildah copy "$C" "$T/www" /www >/dev/null && buildah config --cmd '["/bin/sh", "-c", "sleep ${DELAY:-0}; exec /bin/httpd -f -p 8080 -h /www"]' "$C" &&
    buildah commit -q "$C" "$SVC_IMAGE" >/dev/null 2>>"$T/buildah.err" && buildah rm "$C" >/dev/null ||
    skip "buildah cannot build the service image here: $(tail -n 3 "$T/buildah.err")"
test_cleanup() {
    podman ps -aq --filter label=kiln.job >/dev/null 2>&1 &&
        podman rm -f -t 0 $(podman ps -aq --filter "label=kiln.worker=w1-$$") \
            $(podman ps -aq --filter "label=kiln.worker=fresh-$$") >/dev/null 2>&1
    podman network rm $(podman network ls -q --filter "label=kiln.worker=w1-$$") >/dev/null 2>&1
    podman rmi -f $(podman images -q --filter reference='localhost/kiln-action-*') >/dev/null 2>&1
    podman rmi -f "$SVC_IMAGE" "$IMAGE" >/dev/null 2>&1
}
podman run --rm "$IMAGE" true >"$T/probe.out" 2>&1 || skip "podman cannot run a container here: $(tail -n 3 "$T/probe.out")"

# kiln-worker --check says whether containers work here, and why not.
"$KILN_BIN/kiln-worker" --check >"$T/check.out" 2>&1 || fail "kiln-worker --check: $(cat "$T/check.out")"
grep -q "^container jobs: yes: .*podman started and removed a container in [0-9]* ms" "$T/check.out" &&
    grep -q "^JavaScript actions: yes: " "$T/check.out" || fail "kiln-worker --check said: $(cat "$T/check.out")"
RC=0
"$KILN_BIN/kiln-worker" --check --container-engine "$T/none" --container-runtime engine >"$T/check2.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "^container jobs: no: --container-engine $T/none is not an executable program" "$T/check2.out" ||
    fail "kiln-worker --check without an engine: exit $RC: $(cat "$T/check2.out")"
pass "kiln-worker --check starts a container to say containers work here, and says why not when they do not"

# acme/dock: a Docker action built from its Dockerfile (on the test image),
# with inputs, args, env and a pre-entrypoint.
D=$T/actions/acme/dock
mkdir -p "$D"
tgit init -q "$D"
printf 'FROM %s\nCOPY entry.sh /entry.sh\nCOPY pre.sh /pre.sh\nENTRYPOINT ["/entry.sh"]\n' "$IMAGE" >"$D/Dockerfile"
cat >"$D/entry.sh" <<'SH'
#!/bin/sh
echo "docker action: who=$INPUT_WHO args=$1|$2 env=$FROM_ACTION ws=$GITHUB_WORKSPACE pwd=$(pwd) file=$(cat made.txt) image=$(cat /etc/image-name)"
echo "greeting=hi $1" >>"$GITHUB_OUTPUT"
SH
printf '#!/bin/sh\necho "docker pre: who=$INPUT_WHO"\n' >"$D/pre.sh"
chmod +x "$D/entry.sh" "$D/pre.sh"
cat >"$D/action.yml" <<'YML'
name: dock
inputs:
  who: {default: docker}
runs:
  using: docker
  image: Dockerfile
  pre-entrypoint: /pre.sh
  args:
    - ${{ inputs.who }}
    - second arg
  env:
    FROM_ACTION: yes-${{ inputs.who }}
YML
tgit -C "$D" add -A && tgit -C "$D" commit -qm first && tgit -C "$D" tag v1
# acme/jsin: a JavaScript action that shows where it runs.
D=$T/actions/acme/jsin
mkdir -p "$D"
tgit init -q "$D"
cat >"$D/action.yml" <<'YML'
name: jsin
inputs:
  who: {default: nobody}
outputs:
  seen: {description: the image's name}
runs:
  using: node20
  main: index.js
YML
cat >"$D/index.js" <<'JS'
const fs = require('fs');
const cp = require('child_process');
const name = fs.readFileSync('/etc/image-name', 'utf8').trim();
const shell = cp.execSync('cat /etc/image-name; readlink /bin/sh').toString().trim().replace(/\n/g, ' ');
fs.appendFileSync(process.env.GITHUB_OUTPUT, `seen=${name}\n`);
console.log(`js in container: image=${name} shell=${shell} who=${process.env.INPUT_WHO} ws=${process.cwd() === process.env.GITHUB_WORKSPACE}`);
JS
tgit -C "$D" add -A && tgit -C "$D" commit -qm first && tgit -C "$D" tag v1

start_redis
make_keys
admit_worker "w1-$$"
start_coordinator --actions-source "$T/actions"
start_worker "w1-$$"
wait_workers 1
# containers of this worker only (its name is this test's)
ours() { podman ps -aq --filter "label=kiln.worker=w1-$$"; }
gone() { # until no container of ours is left (bounded)
    for _ in $(seq 1 100); do [ -z "$(ours)" ] && return 0; sleep 0.1; done
    fail "containers left after the job: $(podman ps -a --filter "label=kiln.worker=w1-$$")"
}

cat >"$T/ok.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    container:
      image: $IMAGE
      env:
        FROM_CONTAINER: set-in-container
    env:
      FROM_JOB: set-in-job
    steps:
      - id: one
        run: |
          echo "image \$(cat /etc/image-name) shell \$(readlink /bin/sh) pwd-same \$([ "\$(pwd)" = "\$GITHUB_WORKSPACE" ] && echo yes)"
          echo "env \$FROM_CONTAINER \$FROM_JOB"
          echo made-inside >inside.txt
          echo "answer=42" >>"\$GITHUB_OUTPUT"
          echo "host \$(hostname)" >host.txt
      - run: |
          echo "output \${{ steps.one.outputs.answer }} file \$(cat inside.txt) same-container \$([ "\$(cat host.txt)" = "host \$(hostname)" ] && echo yes)"
      - working-directory: /etc
        run: echo "in \$(pwd) \$(cat image-name)"
      - run: |
          mkdir -p tools && printf '#!/bin/sh\\necho tool on PATH\\n' >tools/kiln-tool && chmod +x tools/kiln-tool
          echo "\$PWD/tools" >>"\$GITHUB_PATH"
      - run: kiln-tool
YML
RC=0
"$KILN" submit --wait "$T/ok.yml" >"$T/ok.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the container job exited $RC: $(tail -n 15 "$T/ok.out")"
grep -q "^a | image kiln-it-image shell /bin/busybox pwd-same yes" "$T/ok.out" &&
    grep -q "^a | env set-in-container set-in-job" "$T/ok.out" &&
    grep -q "^a | output 42 file made-inside same-container yes" "$T/ok.out" &&
    grep -q "^a | in /etc kiln-it-image" "$T/ok.out" &&
    grep -q "^a | tool on PATH" "$T/ok.out" ||
    fail "the steps did not run in the container: $(grep -E '^a \|' "$T/ok.out")"
[ "$(grep -c "Starting the job's container" "$T/ok.out")" = 1 ] || fail "the container was not started once: $(grep -c Starting "$T/ok.out")"
gone
pass "a container job's steps run in its image, with the workspace at the same path, the container's env and the job's; one container per job, removed at its end"

# A JavaScript action of a container job runs in the container (the
# worker's Node.js, the image's files and programs).
cat >"$T/jsin.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    container: $IMAGE
    steps:
      - id: j
        uses: acme/jsin@v1
        with:
          who: kiln
      - run: echo "js output \${{ steps.j.outputs.seen }}"
YML
RC=0
"$KILN" submit --wait "$T/jsin.yml" >"$T/jsin.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | js in container: image=kiln-it-image shell=kiln-it-image /bin/busybox who=kiln ws=true" "$T/jsin.out" &&
    grep -q "^a | js output kiln-it-image" "$T/jsin.out" || fail "a JavaScript action in a container job: exit $RC: $(grep -E '^a \|' "$T/jsin.out" | tail -n 8)"
gone
pass "a container job's JavaScript action runs in its container, with the worker's Node.js"

# The engine's images are in the worker's heartbeat: the next job on the
# image is placed warm, saying so.
for _ in $(seq 1 100); do grep -qx "$IMAGE" "$T/work/w1-$$/engine-images.txt" 2>/dev/null && break; sleep 0.1; done
grep -qx "$IMAGE" "$T/work/w1-$$/engine-images.txt" || fail "the engine's images were not listed: $(cat "$T/work/w1-$$/engine-images.txt" 2>&1)"
sleep 6 # the worker's holdings are scanned every 5 s
RUN=$("$KILN" submit "$T/ok.yml") || fail "cannot submit"
"$KILN" logs "$RUN" -f >/dev/null 2>&1 || true
"$KILN" status "$RUN" >"$T/warm.status" 2>&1
grep -q "placed: warm: w1-$$ holds the job's container image" "$T/warm.status" || fail "not placed warm: $(cat "$T/warm.status")"
gone
pass "the engine's images are reported in the worker's heartbeat, and a job on one is placed where it is, saying so"

# A failing step, then an image that is not there: both end with nothing left.
cat >"$T/fail.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    container: $IMAGE
    steps:
      - run: exit 3
YML
RC=0
"$KILN" submit --wait "$T/fail.yml" >"$T/fail.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "exited with code 3" "$T/fail.out" || fail "a failing container step: exit $RC: $(tail -n 5 "$T/fail.out")"
gone
sed "s|container: $IMAGE|container: localhost/kiln-no-such-image:1|" "$T/fail.yml" >"$T/noimage.yml"
RC=0
"$KILN" submit --wait "$T/noimage.yml" >"$T/noimage.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -qi "localhost/kiln-no-such-image" "$T/noimage.out" || fail "a missing image: exit $RC: $(tail -n 8 "$T/noimage.out")"
gone
pass "a failing step and a missing image fail the job, naming the image; no container is left"

# Cancelled while a step runs in the container: removed.
cat >"$T/long.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    container: $IMAGE
    steps:
      - run: echo started; sleep 60
YML
RUN=$("$KILN" submit "$T/long.yml") || fail "cannot submit the long job"
for _ in $(seq 1 100); do [ -n "$(ours)" ] && break; sleep 0.1; done
[ -n "$(ours)" ] || fail "the long job's container never started"
"$KILN" cancel "$RUN" >/dev/null 2>&1 || fail "cannot cancel run $RUN"
"$KILN" logs "$RUN" -f >"$T/long.out" 2>&1 || true
"$KILN" status "$RUN" --json >"$T/long.json"
[ "$(json_get "$T/long.json" '$.state')" = cancelled ] || fail "the run is $(json_get "$T/long.json" '$.state')"
gone
pass "a cancelled container job's container is removed"

# What a worker refuses: privileged options and host mounts.
refused() { # NAME CONTAINER-YAML WANT
    printf 'on: push\njobs:\n  a:\n    runs-on: linux\n    container:\n%s\n    steps:\n      - run: echo NEVER\n' "$2" >"$T/$1.yml"
    RC=0
    "$KILN" submit --wait "$T/$1.yml" >"$T/$1.out" 2>&1 || RC=$?
    [ $RC = 1 ] && grep -qF "$3" "$T/$1.out" && ! grep -q "^a | NEVER" "$T/$1.out" ||
        fail "$1: exit $RC, want 1 and '$3': $(tail -n 6 "$T/$1.out")"
}
refused priv "      image: $IMAGE
      options: --cpus 1 --privileged" "container.options: --privileged is not allowed on this worker"
refused hostmount "      image: $IMAGE
      volumes:
        - /etc:/host-etc" "container.volumes: /etc:/host-etc mounts the worker's own files"
refused net "      image: $IMAGE
      options: --network=host" "container.options: --network is not allowed"
# Options are words for the engine, never shell text.
cat >"$T/meta.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    container:
      image: $IMAGE
      options: --label "x=\$(touch $T/pwned)" --label 'y;touch $T/pwned2' --env 'QUOTED=a b;c'
    steps:
      - run: echo "quoted [\$QUOTED]"
YML
RC=0
"$KILN" submit --wait "$T/meta.yml" >"$T/meta.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | quoted \[a b;c\]" "$T/meta.out" || fail "options with shell characters: exit $RC: $(tail -n 6 "$T/meta.out")"
[ ! -e "$T/pwned" ] && [ ! -e "$T/pwned2" ] || fail "container.options reached a shell"
gone
pass "--privileged, --network=host and host mounts are refused by default; options never reach a shell"

# services: beside a container job, reached by name on the job's own
# network; beside a job on the host, through the port it maps.
PORT=$(free_port)
cat >"$T/svc.yml" <<YML
on: push
jobs:
  in-container:
    runs-on: linux
    container: $IMAGE
    services:
      web-svc:
        image: $SVC_IMAGE
    steps:
      - run: |
          for i in \$(seq 1 50); do wget -q -O - http://web-svc:8080/i 2>/dev/null && exit 0; sleep 0.1; done
          exit 1
  on-host:
    runs-on: linux
    services:
      web:
        image: $SVC_IMAGE
        ports: ['127.0.0.1:$PORT:8080']
      any-port:
        image: $SVC_IMAGE
        ports: ['8080']
    steps:
      - run: |
          echo "mapped \${{ job.services.web.ports['8080'] }} any \${{ job.services.any-port.ports[8080] != '' }} id \${{ job.services.web.id != '' }}"
          python3 - <<'PY'
          import time, urllib.request
          for port in ($PORT, \${{ job.services.any-port.ports['8080'] }}):
              for _ in range(50):
                  try:
                      print("host got", urllib.request.urlopen("http://127.0.0.1:%d/i" % port, timeout=2).read().decode().strip()); break
                  except OSError:
                      time.sleep(0.1)
              else:
                  raise SystemExit(1)
          PY
YML
RC=0
"$KILN" submit --wait "$T/svc.yml" >"$T/svc.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^in-container | hello from the service" "$T/svc.out" && grep -q "^on-host | host got hello from the service" "$T/svc.out" &&
    [ "$(grep -c "^on-host | host got hello from the service" "$T/svc.out")" = 2 ] &&
    grep -q "^on-host | mapped $PORT any true id true" "$T/svc.out" ||
    fail "services: exit $RC: $(grep -E '\| |error' "$T/svc.out" | tail -n 12)"
gone
[ -z "$(podman network ls -q --filter "label=kiln.worker=w1-$$")" ] || fail "the job's network was left: $(podman network ls)"
pass "services start beside the job: a container job reaches them by name, a job on the host by their mapped port (job.services.<id>.ports, a free one when none is given); all removed at the end"

# Health checks: the first step waits until the service is healthy (a
# service that takes 2 s to listen, reached once, without retrying); one
# that never is fails the job, naming it.
cat >"$T/health.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    container: $IMAGE
    services:
      slow:
        image: $SVC_IMAGE
        env:
          DELAY: 2
        options: --health-cmd "wget -q -O /dev/null http://127.0.0.1:8080/i" --health-interval 500ms --health-retries 20
    steps:
      - run: wget -q -O - http://slow:8080/i
YML
RC=0
"$KILN" submit --wait "$T/health.yml" >"$T/health.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | Service slow is healthy" "$T/health.out" && grep -q "^a | hello from the service" "$T/health.out" ||
    fail "a service's health check: exit $RC: $(grep -E '\| |error' "$T/health.out" | tail -n 12)"
gone
sed 's|--health-cmd "wget[^"]*"|--health-cmd false|; s|--health-retries 20|--health-retries 2|' "$T/health.yml" >"$T/sick.yml"
RC=0
"$KILN" submit --wait "$T/sick.yml" >"$T/sick.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "Service slow is unhealthy after 2 checks 0.5 s apart" "$T/sick.out" ||
    fail "an unhealthy service: exit $RC: $(grep -E '\| |error' "$T/sick.out" | tail -n 8)"
gone
pass "services' health checks are waited for before the first step; a service that stays unhealthy fails the job, naming it"

# Docker actions: one built from its Dockerfile (with its pre-entrypoint,
# inputs, args, env and outputs), and an image run by uses: docker://.
cat >"$T/dock.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - run: echo from-the-workspace >made.txt
      - id: d
        uses: acme/dock@v1
        with:
          who: kiln
      - run: echo "output \${{ steps.d.outputs.greeting }}"
      - uses: docker://$IMAGE
        with:
          entrypoint: /bin/echo
          args: hello "from a docker url"
YML
RC=0
"$KILN" submit --wait "$T/dock.yml" >"$T/dock.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the Docker action run exited $RC: $(tail -n 15 "$T/dock.out")"
grep -q "^a | docker pre: who=kiln" "$T/dock.out" &&
    grep -q "^a | docker action: who=kiln args=kiln|second arg env=yes-kiln ws=/github/workspace pwd=/github/workspace file=from-the-workspace image=kiln-it-image" "$T/dock.out" &&
    grep -q "^a | output hi kiln" "$T/dock.out" && grep -q "^a | hello from a docker url" "$T/dock.out" ||
    fail "the Docker actions: $(grep -E '^a \|' "$T/dock.out")"
gone
pass "Docker actions run in their image (built from the action's Dockerfile, or docker://), with inputs, args, env, outputs and a pre-entrypoint; the workspace at /github/workspace"

# A pool with a default job image: a job without container: runs in a
# fresh container of it; what one job installs is gone for the next.
admit_worker "fresh-$$"
kill -HUP "$COORD_PID"
start_worker "fresh-$$" --labels fresh-pool --job-image "$IMAGE"
wait_workers 2
cat >"$T/fresh.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: fresh-pool
    steps:
      - run: |
          echo "image $(cat /etc/image-name) before $([ -e /opt/kiln-it/installed ] && echo dirty || echo clean)"
          mkdir -p /opt/kiln-it && touch /opt/kiln-it/installed
YML
for n in 1 2; do
    RC=0
    "$KILN" submit --wait "$T/fresh.yml" >"$T/fresh$n.out" 2>&1 || RC=$?
    [ $RC = 0 ] && grep -q "^a | image kiln-it-image before clean" "$T/fresh$n.out" ||
        fail "job $n on the default image: exit $RC: $(tail -n 6 "$T/fresh$n.out")"
done
[ ! -e /opt/kiln-it ] || fail "the job image's install reached the host"
for _ in $(seq 1 100); do [ -z "$(podman ps -aq --filter "label=kiln.worker=fresh-$$")" ] && break; sleep 0.1; done
[ -z "$(podman ps -aq --filter "label=kiln.worker=fresh-$$")" ] || fail "the default image's containers were left"
pass "a worker's --job-image runs every job in a fresh container: what one job installs is gone for the next, nothing reaches the host"

# A worker with no engine: the job fails saying why.
admit_worker "bare-$$"
kill -HUP "$COORD_PID"
mkdir -p "$T/nopath"
env PATH="$T/nopath:/usr/local/bin:/usr/bin:/bin" "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" \
    --server-key "$T/keys/server.pub" --key "$T/keys/bare-$$.key" --name "bare-$$" --work-dir "$T/work/bare" \
    --labels bare-only --container-engine "$T/nopath/podman" >"$T/bare.log" 2>&1 &
BARE=$!
PIDS+=($BARE)
RC=0
wait "$BARE" || RC=$?
[ $RC = 2 ] && grep -q "container-engine $T/nopath/podman is not an executable program" "$T/bare.log" ||
    fail "a worker with a --container-engine that is none: exit $RC: $(cat "$T/bare.log")"
pass "a worker whose --container-engine is no program refuses to start, naming it"

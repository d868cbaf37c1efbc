# The native container runtime: images pulled by the worker itself from a
# docker-registry on 127.0.0.1 (images built here with buildah from
# busybox-static and pushed there), run with bubblewrap on a fresh overlay
# per job. The first job pulls every layer, the next on the same worker
# none; a second image on the same base pulls only its new layer, and its
# whiteout deletes a base file; a tampered blob is refused by digest; what a
# job installs under /usr is gone for the next job; the store's quota
# evicts the least recently used image, never one a job holds; with two
# workers a job goes to the one holding its image; a cancelled job's
# overlay and hold are removed; a registry that wants a bearer token gets
# one for the farm's credentials (which no log holds); a pull-through
# mirror serves a registry's images; KILN_CACHE_REGISTRY lets a build on
# one worker reuse the layers a build on another pushed there.
source "$(dirname "$0")/lib.sh"
command -v docker-registry >/dev/null && command -v buildah >/dev/null && command -v bwrap >/dev/null &&
    [ -x /bin/busybox ] || skip "docker-registry, buildah, bubblewrap or busybox-static is not installed (make deps installs them)"
engine_conf
IMG_PREFIX=localhost/kiln-it-native-$$
test_cleanup() {
    buildah rmi -f $(buildah images -q --filter "reference=$IMG_PREFIX*" 2>/dev/null) >/dev/null 2>&1
    buildah rmi -f $(buildah images -q --filter "reference=127.0.0.1:$REG_PORT/kiln/*" 2>/dev/null) >/dev/null 2>&1
    true
}

# The registry as deploy/registry/cache.yml sets it up, on a port and a
# directory of the test's own.
REG_PORT=$(free_port)
REG=127.0.0.1:$REG_PORT
mkdir -p "$T/registry"
REGISTRY_HTTP_ADDR=$REG REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$T/registry REGISTRY_LOG_LEVEL=error \
    docker-registry serve "$KILN_SRC/deploy/registry/cache.yml" >"$T/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fs "http://$REG/v2/" >/dev/null || fail "the registry did not start: $(tail -n 3 "$T/registry.log")"

# bb:1, busybox and a base file; bb:2 on it, the base file deleted (a
# whiteout) and one file added; bb:3 another image for the tampering.
C=$(buildah from scratch 2>"$T/buildah.err") && buildah copy "$C" /bin/busybox /bin/busybox >/dev/null &&
    buildah run "$C" -- /bin/busybox --install -s /bin >/dev/null 2>>"$T/buildah.err" &&
    mkdir -p "$T/etc" && echo "from the base" >"$T/etc/base-file" && buildah copy "$C" "$T/etc/base-file" /etc/base-file >/dev/null &&
    buildah config --env FROM_IMAGE=image-env --env PATH=/usr/local/bin:/bin "$C" &&
    buildah commit -q "$C" "$REG/kiln/bb:1" >/dev/null 2>>"$T/buildah.err" && buildah rm "$C" >/dev/null ||
    skip "buildah cannot build an image here: $(tail -n 3 "$T/buildah.err")"
C=$(buildah from "$REG/kiln/bb:1" 2>>"$T/buildah.err") &&
    buildah run "$C" -- /bin/sh -c 'rm /etc/base-file && echo second >/etc/second-file' 2>>"$T/buildah.err" &&
    buildah commit -q "$C" "$REG/kiln/bb:2" >/dev/null 2>>"$T/buildah.err" && buildah rm "$C" >/dev/null ||
    fail "cannot build the second image: $(tail -n 3 "$T/buildah.err")"
C=$(buildah from "$REG/kiln/bb:1" 2>>"$T/buildah.err") &&
    buildah run "$C" -- /bin/sh -c 'echo third >/etc/third-file' 2>>"$T/buildah.err" &&
    buildah commit -q "$C" "$REG/kiln/bb:3" >/dev/null 2>>"$T/buildah.err" && buildah rm "$C" >/dev/null ||
    fail "cannot build the third image: $(tail -n 3 "$T/buildah.err")"
for i in 1 2 3; do
    buildah push -q --tls-verify=false "$REG/kiln/bb:$i" >/dev/null 2>>"$T/buildah.err" ||
        fail "cannot push bb:$i: $(tail -n 3 "$T/buildah.err")"
done

# kiln-worker --check says whether the native runtime works here.
"$KILN_BIN/kiln-worker" --check --work-dir "$T/check" >"$T/check.out" 2>&1 || true
grep -q "^native container runtime: yes: .*kiln-image with .*bwrap" "$T/check.out" ||
    fail "kiln-worker --check: $(cat "$T/check.out")"
pass "kiln-worker --check says the native runtime works here"

# acme/regdock: a Docker action whose image is in the test registry.
D=$T/actions/acme/regdock
mkdir -p "$D"
tgit init -q "$D"
cat >"$D/action.yml" <<YML
name: regdock
inputs:
  who: {default: nobody}
outputs:
  greeting: {description: the greeting}
runs:
  using: docker
  image: docker://$REG/kiln/bb:1
  entrypoint: /bin/sh
  args:
    - -c
    - 'echo "native docker action: who=\$INPUT_WHO arg=\$0 env=\$FROM_ACTION ws=\$GITHUB_WORKSPACE pwd=\$(pwd) file=\$(cat made.txt) base=\$(cat /etc/base-file)"; echo "greeting=hi \$INPUT_WHO" >>"\$GITHUB_OUTPUT"'
    - \${{ inputs.who }}
  env:
    FROM_ACTION: yes-\${{ inputs.who }}
YML
tgit -C "$D" add -A && tgit -C "$D" commit -qm first && tgit -C "$D" tag v1
# acme/jsnative: a JavaScript action that shows where it runs.
D=$T/actions/acme/jsnative
mkdir -p "$D"
tgit init -q "$D"
printf 'name: jsnative\nruns:\n  using: node20\n  main: index.js\n' >"$D/action.yml"
cat >"$D/index.js" <<'JS'
const fs = require('fs');
const cp = require('child_process');
const base = fs.readFileSync('/etc/base-file', 'utf8').trim();
const viaSh = cp.execSync('cat /etc/base-file').toString().trim();
fs.writeFileSync('/js-was-here', 'yes');
console.log(`js natively: base=${base} sh=${viaSh} root-uid=${process.getuid()}`);
JS
tgit -C "$D" add -A && tgit -C "$D" commit -qm first && tgit -C "$D" tag v1

start_redis
make_keys
admit_worker "n1-$$"
admit_worker "n2-$$"
admit_worker "n3-$$"
admit_worker "c1-$$"
admit_worker "c2-$$"
admit_worker "e1-$$"
admit_worker "a1-$$"
admit_worker "p2-$$"
start_coordinator --actions-source "$T/actions"
start_worker "n1-$$" --labels linux,first --container-runtime native
wait_workers 1
STORE=$T/work/n1-$$/images
# A job's holds go when its worker has finished with it, just after the
# result that ends the run: wait for that (bounded) before looking.
holds_gone() {
    for _ in $(seq 1 100); do [ -z "$(ls "$1/holds" 2>/dev/null)" ] && return 0; sleep 0.05; done
    return 1
}

cat >"$T/one.yml" <<YML
on: push
jobs:
  a:
    runs-on: first
    container:
      image: $REG/kiln/bb:1
      env:
        FROM_CONTAINER: container-env
    steps:
      - id: s
        run: |
          echo "base \$(cat /etc/base-file) env \$FROM_CONTAINER \$FROM_IMAGE pwd-same \$([ "\$(pwd)" = "\$GITHUB_WORKSPACE" ] && echo yes)"
          echo "usr before: \$(ls /usr/kiln-installed 2>&1 | head -c 40)"
          mkdir -p /usr/kiln-installed && echo x >/usr/kiln-installed/file
          echo "answer=42" >>"\$GITHUB_OUTPUT"
          echo made-inside >inside.txt
      - run: echo "next step sees \$(cat /usr/kiln-installed/file) output \${{ steps.s.outputs.answer }} file \$(cat inside.txt)"
      - run: |
          mkdir -p tools && printf '#!/bin/sh\\necho tool on PATH\\n' >tools/kiln-tool && chmod +x tools/kiln-tool
          echo "\$PWD/tools" >>"\$GITHUB_PATH"
      - run: kiln-tool
YML
RC=0
"$KILN" submit --wait "$T/one.yml" >"$T/one.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the native container job exited $RC: $(tail -n 15 "$T/one.out")"
grep -q "^a | base from the base env container-env image-env pwd-same yes" "$T/one.out" &&
    grep -q "^a | usr before: .*No such file" "$T/one.out" &&
    grep -q "^a | next step sees x output 42 file made-inside" "$T/one.out" &&
    grep -q "^a | tool on PATH" "$T/one.out" ||
    fail "the steps did not run in the image: $(grep -E '^a \|' "$T/one.out")"
grep -q "^a | Pulled $REG/kiln/bb:1 (sha256:[0-9a-f]*): 1 layers, 1 fetched" "$T/one.out" ||
    fail "the first job did not pull its layer: $(grep -E '^a \|' "$T/one.out")"
[ ! -e /usr/kiln-installed ] || fail "the job's install reached the host"
pass "a native container job runs in its image (container env, image env, workspace at the same path, outputs, GITHUB_PATH); the first pull fetches its layer"

cat >"$T/jsnative.yml" <<YML
on: push
jobs:
  a:
    runs-on: first
    container: $REG/kiln/bb:1
    steps:
      - uses: acme/jsnative@v1
      - run: echo "after js \$(cat /js-was-here)"
YML
RC=0
"$KILN" submit --wait "$T/jsnative.yml" >"$T/jsnative.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | js natively: base=from the base sh=from the base root-uid=0" "$T/jsnative.out" &&
    grep -q "^a | after js yes" "$T/jsnative.out" && [ ! -e /js-was-here ] ||
    fail "a JavaScript action in a native container job: exit $RC: $(grep -E '^a \|' "$T/jsnative.out" | tail -n 8)"
pass "a native container job's JavaScript action runs in its root, which the next step sees"

RC=0
"$KILN" submit --wait "$T/one.yml" >"$T/two.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the second native job exited $RC: $(tail -n 15 "$T/two.out")"
grep -q "^a | usr before: .*No such file" "$T/two.out" || fail "the first job's install under /usr reached the second: $(grep -E '^a \|' "$T/two.out")"
grep -q "^a | Image $REG/kiln/bb:1 (sha256:[0-9a-f]*) is on this worker" "$T/two.out" &&
    ! grep -q "Pulled" "$T/two.out" || fail "the second job pulled again: $(grep -E '^a \|' "$T/two.out")"
holds_gone "$STORE" || fail "holds left after the jobs: $(ls "$STORE/holds")"
for _ in $(seq 1 100); do
    [ -z "$(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)" ] && break
    sleep 0.05
done
[ -z "$(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)" ] ||
    fail "overlays left: $(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)"
pass "the next job on the worker pulls nothing and starts from the image again: the first job's /usr install is gone"
"$KILN_BIN/kiln-image" pull --store "$STORE" --pull always "$REG/kiln/bb:1" >"$T/always.out" 2>&1 &&
    grep -q "^Image $REG/kiln/bb:1 is up to date (sha256:" "$T/always.out" || fail "--pull always: $(cat "$T/always.out")"
# What a pull killed halfway left is swept by the next eviction.
: >"$STORE/blobs/sha256/$(printf '%064d' 0).part-999999" && mkdir "$STORE/chains/tmp-$(printf '%064d' 0).999999"
"$KILN_BIN/kiln-image" gc --store "$STORE" --max-mb 100000 >/dev/null || fail "gc"
[ -z "$(ls "$STORE/blobs/sha256" | grep part)" ] && [ -z "$(ls "$STORE/chains" | grep tmp-)" ] ||
    fail "a killed pull's leftovers stayed: $(ls "$STORE/blobs/sha256" "$STORE/chains")"
pass "--pull always asks the registry and finds the held image up to date; a killed pull's leftovers are swept"

sed "s|bb:1|bb:2|; s|echo \"base .*|echo \"base-file \$(cat /etc/base-file 2>\&1 \| head -c 60) second \$(cat /etc/second-file)\"|" "$T/one.yml" >"$T/second.yml"
RC=0
"$KILN" submit --wait "$T/second.yml" >"$T/second.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the second image's job exited $RC: $(tail -n 15 "$T/second.out")"
grep -q "^a | Pulled $REG/kiln/bb:2 (sha256:[0-9a-f]*): 2 layers, 1 fetched ([0-9]* bytes), 1 present" "$T/second.out" ||
    fail "the second image did not pull only its new layer: $(grep -E '^a \|' "$T/second.out")"
grep -q "^a | base-file .*No such file.* second second" "$T/second.out" ||
    fail "the whiteout did not delete the base file: $(grep -E '^a \|' "$T/second.out")"
BB=$(find "$STORE/chains" -path '*/bin/busybox' | head -n 1)
[ -n "$BB" ] && [ "$(stat -c %h "$BB")" = 2 ] ||
    fail "the second image's root does not share the base's files: $(find "$STORE/chains" -path '*/bin/busybox' -exec stat -c '%h %n' {} +)"
pass "a second image on the same base pulls only its new layer, shares the base's unpacked files, and its whiteout deletes a base file"

# A tampered layer in the registry's storage: refused by digest, nothing stored.
M3=$(curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/kiln/bb/manifests/3")
L3=$(printf '%s' "$M3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"])')
DATA=$T/registry/docker/registry/v2/blobs/sha256/${L3:7:2}/${L3:7}/data
[ -f "$DATA" ] || fail "no blob file for $L3"
SIZE=$(stat -c %s "$DATA")
python3 - "$DATA" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(bytes(b))
PY
[ "$(stat -c %s "$DATA")" = "$SIZE" ] || fail "the tampering changed the size"
sed "s|bb:1|bb:3|" "$T/one.yml" >"$T/third.yml"
RC=0
"$KILN" submit --wait "$T/third.yml" >"$T/third.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "blob $L3: the bytes served hash to sha256:[0-9a-f]* .*refused" "$T/third.out" ||
    fail "a tampered layer: exit $RC: $(grep -E '^a \|' "$T/third.out" | tail -n 5)"
[ ! -e "$STORE/blobs/sha256/${L3:7}" ] && [ -z "$(ls "$STORE/blobs/sha256" | grep part)" ] ||
    fail "the tampered layer was kept"
pass "a tampered layer is refused by its digest and never stored"

# The quota: the least recently used image goes, never one a job holds.
"$KILN_BIN/kiln-image" list --store "$STORE" >"$T/list.out"
grep -qx "$REG/kiln/bb:1" "$T/list.out" && grep -qx "$REG/kiln/bb:2" "$T/list.out" || fail "list: $(cat "$T/list.out")"
holds_gone "$STORE" || fail "holds left before the quota's test: $(ls "$STORE/holds")"
touch -d '2 hours ago' "$STORE/refs/"*bb%3A1
mkdir -p "$STORE/holds" && ls "$STORE/refs" | grep 'bb%3A2$' >"$STORE/holds/it-hold"
"$KILN_BIN/kiln-image" gc --store "$STORE" --max-mb 1 >"$T/gc.out" 2>&1 || fail "gc: $(cat "$T/gc.out")"
"$KILN_BIN/kiln-image" list --store "$STORE" >"$T/list2.out"
grep -q "^1 images evicted" "$T/gc.out" && ! grep -qx "$REG/kiln/bb:1" "$T/list2.out" &&
    grep -qx "$REG/kiln/bb:2" "$T/list2.out" || fail "gc: $(cat "$T/gc.out"); left: $(cat "$T/list2.out")"
# bb:2's base layer is bb:1's: it stays, bb:1's own chain root is no longer
# needed as a root of its own only when no image builds on it.
[ -n "$(find "$STORE/chains" -maxdepth 3 -path '*/etc/second-file')" ] || fail "gc removed the held image's root"
rm -f "$STORE/holds/it-hold"
"$KILN_BIN/kiln-image" gc --store "$STORE" --max-mb 1 >"$T/gc2.out" 2>&1 || fail "gc: $(cat "$T/gc2.out")"
[ -z "$("$KILN_BIN/kiln-image" list --store "$STORE")" ] && [ -z "$(ls "$STORE/blobs/sha256")" ] &&
    [ -z "$(ls "$STORE/chains")" ] || fail "gc left: $(ls -R "$STORE" | head -n 20)"
pass "the image store's quota evicts the least recently used image and what only it needed, never an image a job holds"

# Two workers: the job goes to the one that holds its image.
"$KILN" submit --wait "$T/one.yml" >"$T/warm0.out" 2>&1 || fail "re-pull on n1: $(tail -n 5 "$T/warm0.out")"
kill -HUP "$COORD_PID"
start_worker "n2-$$" --labels linux,first,second --container-runtime native
wait_workers 2
# n1's heartbeat names the image (every few seconds, when it changed).
for _ in $(seq 1 100); do
    "$KILN" workers --json >"$T/workers.json" 2>/dev/null
    grep -q "n2-$$" "$T/workers.json" && break
    sleep 0.1
done
sleep 6
placed_n1=0
for i in 1 2 3; do
    RUN=$("$KILN" submit "$T/one.yml") || fail "cannot submit"
    "$KILN" logs "$RUN" -f >"$T/aff$i.out" 2>&1 || true
    "$KILN" status "$RUN" >"$T/aff$i.status" 2>&1
    grep -q "placed: warm: n1-$$ holds the job's container image" "$T/aff$i.status" && placed_n1=$((placed_n1 + 1))
done
[ $placed_n1 = 3 ] || fail "jobs were not placed where the image is ($placed_n1 of 3): $(cat "$T/aff1.status")"
pass "with two workers, each job goes to the one holding its image, saying so"

# By layers: a job on bb:2 ran once on n2 (so the farm knows its image's
# layers), n2's store was emptied since; n1 holds bb:1, bb:2's base: the
# job goes to n1, which holds one of its two layers.
cat >"$T/layered.yml" <<YML
on: {workflow_dispatch: {inputs: {pool: {required: true}}}}
jobs:
  a:
    runs-on: \${{ inputs.pool }}
    container: $REG/kiln/bb:2
    steps:
      - run: cat /etc/second-file
YML
"$KILN" submit --wait "$T/layered.yml" --input pool=second >"$T/layered1.out" 2>&1 || fail "bb:2 on n2: $(tail -n 5 "$T/layered1.out")"
holds_gone "$T/work/n2-$$/images" || fail "n2's hold stayed"
"$KILN_BIN/kiln-image" gc --store "$T/work/n2-$$/images" --max-mb 1 >/dev/null || fail "gc on n2"
[ -z "$("$KILN_BIN/kiln-image" list --store "$T/work/n2-$$/images")" ] || fail "n2 still holds images"
sleep 6 # the next heartbeat says so
RUN=$("$KILN" submit "$T/layered.yml" --input pool=first) || fail "cannot submit"
"$KILN" logs "$RUN" -f >"$T/layered2.out" 2>&1 || true
"$KILN" status "$RUN" >"$T/layered2.status" 2>&1
grep -q "placed: warm: n1-$$ holds 1 of the 2 largest layers of the job's container image" "$T/layered2.status" ||
    fail "not placed by layers: $(cat "$T/layered2.status")"
pass "a job goes to the worker holding part of its image (its base layer), saying how much"

# Cancelled mid-step: the overlay and the hold go.
cat >"$T/long.yml" <<YML
on: push
jobs:
  a:
    runs-on: first
    container: $REG/kiln/bb:1
    steps:
      - run: echo started; touch /long-was-here; sleep 60
YML
RUN=$("$KILN" submit "$T/long.yml") || fail "cannot submit the long job"
for _ in $(seq 1 200); do [ -n "$(ls "$STORE/holds" 2>/dev/null)$(ls "$T/work/n2-$$/images/holds" 2>/dev/null)" ] && break; sleep 0.05; done
[ -n "$(ls "$STORE/holds")" ] || fail "the long job never held its image: $("$KILN" status "$RUN" 2>&1 | tail -n 5) $("$KILN" logs "$RUN" 2>&1 | tail -n 5)"
"$KILN" cancel "$RUN" >/dev/null 2>&1 || fail "cannot cancel run $RUN"
"$KILN" logs "$RUN" -f >"$T/long.out" 2>&1 || true
for _ in $(seq 1 100); do
    [ -z "$(ls "$STORE/holds")" ] && [ -z "$(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)" ] && break
    sleep 0.1
done
[ -z "$(ls "$STORE/holds")" ] || fail "the cancelled job still holds its image"
[ -z "$(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)" ] || fail "the cancelled job's overlay was left"
pass "a cancelled native job's overlay and hold are removed"

# A pool's default job image, natively: every job without a container of
# its own starts in a fresh root from it.
kill -HUP "$COORD_PID"
start_worker "n3-$$" --labels fresh --container-runtime native --job-image "$REG/kiln/bb:2"
wait_workers 3
cat >"$T/fresh.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: fresh
    steps:
      - run: |
          echo "fresh: $(cat /etc/second-file) before $(cat /kiln-fresh 2>/dev/null || echo clean)"
          echo dirty >/kiln-fresh
YML
for n in 1 2; do
    RC=0
    "$KILN" submit --wait "$T/fresh.yml" >"$T/fresh$n.out" 2>&1 || RC=$?
    [ $RC = 0 ] && grep -q "^a | fresh: second before clean" "$T/fresh$n.out" ||
        fail "job $n on the native default image: exit $RC: $(grep -E '^a \|' "$T/fresh$n.out" | tail -n 6)"
done
[ ! -e /kiln-fresh ] || fail "the job image's write reached the host"
pass "a native pool's --job-image runs every job in a fresh root: what one job writes is gone for the next"

# A registry that wants a bearer token: refused without the farm's
# credentials, pulled with them; the password is in no output.
AUTH_PORT=$(free_port)
SECRET=s3cret-Pa55-$$
python3 "$KILN_SRC/tests/integration/regauth.py" "$AUTH_PORT" "http://$REG" kiln-user "$SECRET" >"$T/regauth.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$AUTH_PORT/v2/" && break; sleep 0.05; done
AREF=127.0.0.1:$AUTH_PORT/kiln/bb:1
RC=0
"$KILN_BIN/kiln-image" pull --store "$T/astore" "$AREF" >"$T/anon.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "registry 127.0.0.1:$AUTH_PORT: token service: credentials refused" "$T/anon.out" ||
    fail "a pull without credentials: exit $RC: $(cat "$T/anon.out")"
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$AUTH_PORT" "$(printf 'kiln-user:wrong' | base64)" >"$T/wrong.json"
RC=0
"$KILN_BIN/kiln-image" pull --store "$T/astore" --auth "$T/wrong.json" "$AREF" >"$T/wrong.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "credentials refused" "$T/wrong.out" || fail "a pull with wrong credentials: exit $RC: $(cat "$T/wrong.out")"
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$AUTH_PORT" "$(printf 'kiln-user:%s' "$SECRET" | base64)" >"$T/auths.json"
chmod 600 "$T/auths.json"
"$KILN_BIN/kiln-image" pull --store "$T/astore" --auth "$T/auths.json" "$AREF" >"$T/authed.out" 2>&1 ||
    fail "a pull with the farm's credentials: $(cat "$T/authed.out")"
grep -q "^Pulled $AREF (sha256:[0-9a-f]*): 1 layers, 1 fetched" "$T/authed.out" || fail "authenticated pull: $(cat "$T/authed.out")"
grep -q "^GET /token?service=kiln-test&scope=repository%3Akiln%2Fbb%3Apull auth=Basic" "$T/regauth.log" &&
    grep -q "^GET /v2/kiln/bb/blobs/sha256:[0-9a-f]* auth=Bearer" "$T/regauth.log" ||
    fail "the token exchange: $(cat "$T/regauth.log")"
! grep -rq -- "$SECRET" "$T"/*.out "$T"/*.log || fail "the registry password reached an output: $(grep -rl -- "$SECRET" "$T"/*.out "$T"/*.log)"
pass "a registry's bearer-token challenge is answered with the farm's credentials (refused without them or with wrong ones); no output holds the password"

# Images by digest: exact from the registry; a registry that serves
# another manifest for the digest asked is refused.
D1=$(curl -fsI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/kiln/bb/manifests/1" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
[ -n "$D1" ] || fail "no digest for bb:1"
"$KILN_BIN/kiln-image" pull --store "$T/dstore" "$REG/kiln/bb@$D1" >"$T/digest.out" 2>&1 &&
    grep -q "^Pulled $REG/kiln/bb@$D1 ($D1)" "$T/digest.out" || fail "a pull by digest: $(cat "$T/digest.out")"
LIE_PORT=$(free_port)
python3 "$KILN_SRC/tests/integration/regauth.py" "$LIE_PORT" "http://$REG" kiln-user "$SECRET" 2 >"$T/liar.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$LIE_PORT/v2/" && break; sleep 0.05; done
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$LIE_PORT" "$(printf 'kiln-user:%s' "$SECRET" | base64)" >"$T/liar.json"
RC=0
"$KILN_BIN/kiln-image" pull --store "$T/dstore2" --auth "$T/liar.json" "127.0.0.1:$LIE_PORT/kiln/bb@$D1" >"$T/lie.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "the manifest served for $D1 has the digest sha256:[0-9a-f]*: refused" "$T/lie.out" &&
    [ -z "$("$KILN_BIN/kiln-image" list --store "$T/dstore2")" ] || fail "a lying registry: exit $RC: $(cat "$T/lie.out")"
pass "an image by digest is pulled exactly, and a registry serving another manifest for that digest is refused"

# A job's own credentials (container.credentials), natively and through
# podman: the pull authenticates, the file that held them is gone after
# the job, and neither the log nor the workers' logs hold the password.
cat >"$T/cred.yml" <<YML
on: {workflow_dispatch: {inputs: {pool: {required: true}}}}
jobs:
  a:
    runs-on: \${{ inputs.pool }}
    container:
      image: $AREF
      credentials:
        username: kiln-user
        password: $SECRET
    steps:
      - run: echo "in the private image \$(ls /bin/busybox)"
YML
RC=0
"$KILN" submit --wait "$T/cred.yml" --input pool=first >"$T/cred.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | Pulled $AREF" "$T/cred.out" && grep -q "^a | in the private image /bin/busybox" "$T/cred.out" ||
    fail "a native job with credentials: exit $RC: $(grep -E '^a \|' "$T/cred.out" | tail -n 6)"
pools=native
if podman info >/dev/null 2>&1; then
    printf '[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$AUTH_PORT" >"$T/registries.conf"
    kill -HUP "$COORD_PID"
    CONTAINERS_REGISTRIES_CONF=$T/registries.conf start_worker "e1-$$" --labels engine-pool --container-runtime engine
    wait_workers 4
    RC=0
    "$KILN" submit --wait "$T/cred.yml" --input pool=engine-pool >"$T/cred2.out" 2>&1 || RC=$?
    [ $RC = 0 ] && grep -q "^a | in the private image /bin/busybox" "$T/cred2.out" ||
        fail "a podman job with credentials: exit $RC: $(grep -E '^a \|' "$T/cred2.out" | tail -n 6)"
    podman rmi -f "$AREF" >/dev/null 2>&1 || true
    pools="native and podman"
else
    echo "note: podman does not work here; the engine half of this part did not run"
fi
sleep 0.5
[ -z "$(find "$T/work" -path '*/.kiln-auth-*')" ] || fail "credentials files left: $(find "$T/work" -path '*/.kiln-auth-*')"
! grep -rq -- "$SECRET" "$T"/*.out "$T"/*.log || fail "the registry password reached an output: $(grep -rl -- "$SECRET" "$T"/*.out "$T"/*.log)"
pass "a job's container credentials authenticate its pull ($pools), are removed with the job and reach no log"

# A pull-through mirror (deploy/registry/mirror.yml, its upstream the test
# registry) in front of the registry: the pull goes through it, which
# keeps the blobs.
MIR_PORT=$(free_port)
mkdir -p "$T/mirror"
REGISTRY_HTTP_ADDR=127.0.0.1:$MIR_PORT REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$T/mirror \
    REGISTRY_PROXY_REMOTEURL=http://$REG REGISTRY_LOG_LEVEL=error \
    docker-registry serve "$KILN_SRC/deploy/registry/mirror.yml" >"$T/mirror.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$MIR_PORT/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
"$KILN_BIN/kiln-image" pull --store "$T/mstore" --mirror "$REG=http://127.0.0.1:$MIR_PORT" "$REG/kiln/bb:2" >"$T/mirror.out" 2>&1 ||
    fail "a pull through the mirror: $(cat "$T/mirror.out")"
grep -q "^Pulled $REG/kiln/bb:2 (sha256:[0-9a-f]*): 2 layers, 2 fetched" "$T/mirror.out" || fail "mirror pull: $(cat "$T/mirror.out")"
for _ in $(seq 1 50); do [ "$(find "$T/mirror" -name data -path '*/blobs/*' | wc -l)" -ge 3 ] && break; sleep 0.1; done
[ "$(find "$T/mirror" -name data -path '*/blobs/*' | wc -l)" -ge 3 ] || fail "the mirror kept no blobs: $(find "$T/mirror" | head)"
pass "--registry-mirror HOST=URL pulls a registry's images through a pull-through mirror, which keeps them"

# KILN_CACHE_REGISTRY: a build on c1 pushes its layers there (--cache-to);
# the same build on c2, with a storage of its own, reuses them
# (--cache-from) instead of running the step again.
for w in c1 c2; do
    printf '[storage]\ndriver="overlay"\ngraphroot="%s/storage-%s/graph"\nrunroot="%s/storage-%s/run"\n' "$T" "$w" "$T" "$w" >"$T/storage-$w.conf"
done
kill -HUP "$COORD_PID"
start_worker "c1-$$" --labels cache-a --cache-registry "$REG/kiln-cache" --env "CONTAINERS_STORAGE_CONF=$T/storage-c1.conf" --pass-env CONTAINERS_CONF
start_worker "c2-$$" --labels cache-b --cache-registry "$REG/kiln-cache" --env "CONTAINERS_STORAGE_CONF=$T/storage-c2.conf" --pass-env CONTAINERS_CONF
wait_workers 5
mkdir -p "$T/ctx"
printf 'FROM %s/kiln/bb:1\nRUN echo "built-$RANDOM-$RANDOM" >/stamp\n' "$REG" >"$T/ctx/Containerfile"
cat >"$T/build.yml" <<YML
on: push
jobs:
  first:
    runs-on: cache-a
    steps:
      - run: &build |
          buildah bud -q --layers --tls-verify=false --cache-to "\$KILN_CACHE_REGISTRY/app" --cache-from "\$KILN_CACHE_REGISTRY/app" -t app:1 "$T/ctx" >/dev/null
          c=\$(buildah from -q app:1)
          echo "stamp \$(buildah run "\$c" cat /stamp)"
          buildah rm "\$c" >/dev/null
  second:
    needs: first
    runs-on: cache-b
    steps:
      - run: *build
YML
RC=0
"$KILN" submit --wait "$T/build.yml" >"$T/build.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the image builds: exit $RC: $(grep -E '\| ' "$T/build.out" | tail -n 10)"
S1=$(sed -n 's/^first | stamp //p' "$T/build.out")
S2=$(sed -n 's/^second | stamp //p' "$T/build.out")
[ -n "$S1" ] && [ "$S1" = "$S2" ] || fail "the second build did not reuse the first one's layer: '$S1' and '$S2'"
[ "$(CONTAINERS_STORAGE_CONF=$T/storage-c2.conf buildah images -q | wc -l)" -ge 1 ] || fail "c2 has no storage of its own"
pass "with KILN_CACHE_REGISTRY a build on one worker reuses the layers a build on another pushed there"

# Docker actions natively: one from the registry with inputs, args, env and
# an output, and a docker:// step with with.entrypoint and with.args.
cat >"$T/dock.yml" <<YML
on: push
jobs:
  a:
    runs-on: first
    steps:
      - run: echo from-the-workspace >made.txt
      - id: d
        uses: acme/regdock@v1
        with:
          who: kiln
      - run: echo "output \${{ steps.d.outputs.greeting }}"
      - uses: docker://$REG/kiln/bb:2
        with:
          entrypoint: /bin/sh
          args: -c "echo direct step \$(cat /etc/second-file) in \$(pwd)"
YML
RC=0
"$KILN" submit --wait "$T/dock.yml" >"$T/dock.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "native Docker actions: exit $RC: $(grep -E '^a \|' "$T/dock.out" | tail -n 12)"
grep -q "^a | native docker action: who=kiln arg=kiln env=yes-kiln ws=/github/workspace pwd=/github/workspace file=from-the-workspace base=from the base" "$T/dock.out" &&
    grep -q "^a | output hi kiln" "$T/dock.out" &&
    grep -q "^a | direct step second in /github/workspace" "$T/dock.out" ||
    fail "native Docker actions: $(grep -E '^a \|' "$T/dock.out" | tail -n 12)"
for _ in $(seq 1 50); do [ -z "$(ls "$STORE/holds")" ] && break; sleep 0.1; done
[ -z "$(ls "$STORE/holds")" ] || fail "the Docker actions' holds were left: $(ls "$STORE/holds")"
pass "Docker actions run natively on a native worker: an image from the registry with inputs, args, env and outputs, and a docker:// step; the workspace at /github/workspace"

# The runtime per job: env.KILN_CONTAINER_RUNTIME on a worker that has
# both (auto), and a refusal where the worker's runtime is the other one.
cat >"$T/choose.yml" <<YML
on: {workflow_dispatch: {inputs: {pool: {required: true}, runtime: {required: true}}}}
jobs:
  a:
    runs-on: \${{ inputs.pool }}
    env:
      KILN_CONTAINER_RUNTIME: \${{ inputs.runtime }}
    container: $REG/kiln/bb:1
    timeout-minutes: 1
    steps:
      - run: echo "ran in \$(cat /etc/base-file)"
YML
if podman info >/dev/null 2>&1; then
    printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$T/registries-a1.conf"
    kill -HUP "$COORD_PID"
    CONTAINERS_REGISTRIES_CONF=$T/registries-a1.conf start_worker "a1-$$" --labels auto-pool
    wait_workers 6
    for rt in engine native ""; do
        RC=0
        "$KILN" submit --wait "$T/choose.yml" --input pool=auto-pool --input runtime="$rt" >"$T/choose-$rt.out" 2>&1 || RC=$?
        [ $RC = 0 ] && grep -q "^a | ran in from the base" "$T/choose-$rt.out" ||
            fail "runtime '$rt' on an auto worker: exit $RC: $(grep -E '^a \|' "$T/choose-$rt.out" | tail -n 5)"
        if [ "$rt" = engine ]; then
            grep -q "^a | Starting the job's container" "$T/choose-$rt.out" || fail "engine was asked for: $(grep -E '^a \|' "$T/choose-$rt.out")"
        else
            grep -qE "^a | (Pulled|Image) $REG/kiln/bb:1" "$T/choose-$rt.out" || fail "native ('$rt'): $(grep -E '^a \|' "$T/choose-$rt.out")"
        fi
    done
    podman rmi -f "$REG/kiln/bb:1" >/dev/null 2>&1 || true
    chosen="engine, native and the default (native) on an auto worker"
else
    echo "note: podman does not work here; the engine half of this part did not run"
    chosen="native"
fi
RC=0
"$KILN" submit --wait "$T/choose.yml" --input pool=first --input runtime=engine >"$T/refuse.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "the job asks for the engine runtime (env.KILN_CONTAINER_RUNTIME) and this worker runs containers with its native runtime only" "$T/refuse.out" ||
    fail "engine asked of a native worker: exit $RC: $(grep -E '^a \|' "$T/refuse.out" | tail -n 4)"
pass "a job chooses its runtime with env.KILN_CONTAINER_RUNTIME ($chosen); a worker whose runtime is the other one refuses, saying why"

# A native job over its timeout: its overlay and hold go too.
cat >"$T/slow.yml" <<YML
on: push
jobs:
  a:
    runs-on: first
    container: $REG/kiln/bb:1
    timeout-minutes: 0.05
    steps:
      - run: echo started; sleep 60
YML
RC=0
"$KILN" submit --wait "$T/slow.yml" >"$T/slow.out" 2>&1 || RC=$?
[ $RC = 1 ] || fail "the job over its timeout: exit $RC: $(tail -n 5 "$T/slow.out")"
for _ in $(seq 1 100); do
    [ -z "$(ls "$STORE/holds")" ] && [ -z "$(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)" ] && break
    sleep 0.1
done
[ -z "$(ls "$STORE/holds")" ] && [ -z "$(ls -d "$T/work/n1-$$"/*/.kiln-native* "$T/work/n1-$$"/.kiln-trash-native-* 2>/dev/null)" ] ||
    fail "a timed-out native job left its hold or overlay"
pass "a native job over its timeout leaves no overlay and no hold"

# As a user other than root (a worker run unprivileged): kiln-image maps
# that user to root in a user namespace of its own, mounts the overlay
# there, and the step writes as root of its root file system.
if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    # The programs copied where nobody can reach them (a build tree may be
    # under a directory only its owner can enter); kiln-image-pull beside.
    mkdir -p "$T/unpriv/job" "$T/unpriv/bin" && cp "$KILN_BIN/kiln-image" "$KILN_BIN/kiln-image-pull" "$T/unpriv/bin/" &&
        chown -R nobody "$T/unpriv" && chmod 755 "$T"
    RC=0
    setpriv --reuid nobody --regid "$(id -g nobody)" --clear-groups "$T/unpriv/bin/kiln-image" run --store "$T/unpriv/store" \
        --state "$T/unpriv/job/state" --hold h --bind "$T/unpriv/job:$T/unpriv/job" --cwd "$T/unpriv/job" "$REG/kiln/bb:2" -- \
        sh -c 'echo "inside $(id -u) $(cat /etc/second-file)"; echo mine >/etc/written; ls -ld / | cut -c1-10' >"$T/unpriv.out" 2>&1 || RC=$?
    [ $RC = 0 ] && grep -q "^inside 0 second" "$T/unpriv.out" && grep -q "^drwxr-xr-x" "$T/unpriv.out" &&
        [ "$(stat -c %U "$T/unpriv/job/state/upper/etc/written")" = nobody ] ||
        fail "kiln-image as nobody: exit $RC: $(cat "$T/unpriv.out")"
    pass "kiln-image runs unprivileged: the worker's user is root in the sandbox, its writes the user's own outside"
else
    echo "note: no setpriv or no user nobody here; the unprivileged part did not run"
fi

# A full disk under the store: the pull fails saying so, and leaves no
# partial blob, root or record behind; with room again it succeeds.
if [ "$(id -u)" = 0 ] && mkdir -p "$T/small" && mount -t tmpfs -o size=1m,mode=0700 kiln-it-native "$T/small" 2>/dev/null; then
    RC=0
    "$KILN_BIN/kiln-image" pull --store "$T/small/store" "$REG/kiln/bb:1" >"$T/full.out" 2>&1 || RC=$?
    [ $RC = 1 ] && grep -q "No space left on device" "$T/full.out" || { umount -l "$T/small"; fail "a pull on a full disk: exit $RC: $(cat "$T/full.out")"; }
    left=$(find "$T/small/store" -name '*.part-*' -o -path '*/chains/tmp-*' -o -path '*/refs/*' | head -n 3)
    [ -z "$left" ] || { umount -l "$T/small"; fail "a failed pull left: $left"; }
    umount -l "$T/small"
    mount -t tmpfs -o size=16m,mode=0700 kiln-it-native "$T/small" || fail "cannot remount"
    "$KILN_BIN/kiln-image" pull --store "$T/small/store" "$REG/kiln/bb:1" >"$T/room.out" 2>&1 || { umount -l "$T/small"; fail "a pull with room: $(cat "$T/room.out")"; }
    umount -l "$T/small"
    pass "a pull onto a full disk fails saying so and leaves nothing partial; with room it succeeds"
else
    echo "note: cannot mount a tmpfs here (needs root); the full-disk part did not run"
fi

# Two jobs at once on one worker, both on an image it has never pulled (a
# matrix on two slots): both pull, neither breaks the other's store.
kill -HUP "$COORD_PID"
start_worker "p2-$$" --labels pair --slots 2 --container-runtime native
for _ in $(seq 1 100); do "$KILN" workers --json 2>/dev/null | grep -q "p2-$$" && break; sleep 0.05; done
cat >"$T/pair.yml" <<YML
on: push
jobs:
  a:
    runs-on: pair
    strategy:
      matrix:
        n: [1, 2]
    container: $REG/kiln/bb:2
    steps:
      - run: echo "pair \${{ matrix.n }} \$(cat /etc/second-file)"
YML
RC=0
"$KILN" submit --wait "$T/pair.yml" >"$T/pair.out" 2>&1 || RC=$?
[ $RC = 0 ] && [ "$(grep -c "| pair [12] second" "$T/pair.out")" = 2 ] ||
    fail "two cold jobs at once: exit $RC: $(grep -E '\| ' "$T/pair.out" | tail -n 12)"
[ "$("$KILN_BIN/kiln-image" list --store "$T/work/p2-$$/images")" = "$REG/kiln/bb:2" ] &&
    [ -z "$(ls "$T/work/p2-$$/images/blobs/sha256" | grep part)" ] && [ -z "$(ls "$T/work/p2-$$/images/chains" | grep tmp-)" ] ||
    fail "the store after two pulls at once: $(ls -R "$T/work/p2-$$/images" | head -n 20)"
pass "two jobs pulling the same image at once on one worker both run, and the store holds it once"

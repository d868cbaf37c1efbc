# Cache scopes as GitHub's, for runs of a repository: a ref restores from
# its own entries, its pull request's base and the default branch, and
# from nothing else (another branch's newer entry is not seen); the base
# ranks before the default branch; kiln cache list shows entries by
# repository and ref.
source "$(dirname "$0")/lib.sh"
SRV=$T/srv
mkdir -p "$SRV/acme"
W=$T/scope
tgit init -q "$W"
mkdir -p "$W/.github/workflows"
cat >"$W/.github/workflows/c.yml" <<'YML'
on: [push, pull_request]
jobs:
  c:
    runs-on: linux
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          path: d
          key: k-${{ github.ref_name }}
          restore-keys: k-
      - run: |
          echo "hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }} from=$(cat d/who 2>/dev/null || echo none)"
          mkdir -p d && echo "${{ github.ref_name }}" >d/who
YML
tgit -C "$W" add -A && tgit -C "$W" commit -qm "scope: first"
tgit clone -q --bare "$W" "$SRV/acme/scope.git"
for b in feature other topic; do tgit -C "$SRV/acme/scope.git" branch "$b" main; done
start_git_servers "$SRV"
REPO=git://127.0.0.1:$GIT_PORT/acme/scope.git
start_farm 1

go() { # OUT ARGS...
    local out=$1
    shift
    RC=0
    "$KILN" submit --wait --repo "$REPO" "$@" >"$T/$out" 2>&1 || RC=$?
    [ $RC = 0 ] || fail "$out exited $RC: $(tail -n 6 "$T/$out")"
}
go main.out --ref main
grep -q "hit=false matched= from=none" "$T/main.out" || fail "main: $(grep hit= "$T/main.out")"
go feature.out --ref feature
grep -q "hit=false matched=k-main from=main" "$T/feature.out" || fail "feature did not restore main's entry: $(grep hit= "$T/feature.out")"
# other: feature's entry is the newest with the prefix, but not other's to see.
go other.out --ref other
grep -q "hit=false matched=k-main from=main" "$T/other.out" || fail "other saw another branch's entry: $(grep hit= "$T/other.out")"
pass "a branch restores from the default branch, never from another branch (whose entry was newer)"

# A pull request from topic into feature: the base's entry ranks before the default branch's.
go pr.out --event pull_request --ref topic --base feature --pr 3
grep -q "hit=false matched=k-feature from=feature" "$T/pr.out" || fail "the pull request did not restore its base's entry: $(grep hit= "$T/pr.out")"
pass "a pull request restores from its base before the default branch"

"$KILN" cache list acme/scope >"$T/list.out"
for r in main feature other; do
    grep -q "^acme/scope  *refs/heads/$r  *k-$r " "$T/list.out" || fail "kiln cache list lacks $r's entry: $(cat "$T/list.out")"
done
# The pull request's own entry is under its ref, as GitHub scopes them.
grep -q "^acme/scope  *refs/pull/3/head  *k-3/head " "$T/list.out" || fail "kiln cache list lacks the pull request's entry: $(cat "$T/list.out")"
pass "kiln cache list shows each ref's entry under its repository"

#!/usr/bin/env bash
# run.sh BIN_DIR SECONDS: runs every fuzz_* target in BIN_DIR for SECONDS
# each, on its seed corpus (tests/fuzz/corpus/<name>), and fails on the
# first crash. New inputs go to a scratch corpus, not into the tree.
set -euo pipefail
bin=$1
secs=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/kiln-fuzz.XXXXXX)
status=0
# The scratch corpus goes; a crash's input stays (its path is printed).
trap '[ "$status" = 0 ] && rm -rf "$scratch"' EXIT
for f in "$bin"/fuzz_*; do
    name=$(basename "$f")
    seeds=$here/corpus/${name#fuzz_}
    mkdir -p "$scratch/$name"
    echo "== $name (${secs}s)"
    if ! "$f" -max_total_time="$secs" -max_len=65536 -artifact_prefix="$scratch/$name-" \
        "$scratch/$name" "$seeds" 2>"$scratch/$name.log"; then
        tail -n 30 "$scratch/$name.log"
        ls "$scratch/$name-"* 2>/dev/null | sed 's/^/crash input kept: /'
        status=1
    else
        grep -E "^#[0-9]+.*DONE" "$scratch/$name.log" | tail -n 1 || true
    fi
done
exit $status

#!/usr/bin/env bash
# demo.sh KILN: `make demo`. Makes the example project (examples/project) a
# git repository of its own in a temporary directory (two commits, a tag),
# and runs its CI there with `kiln run`: a checkout with libgit2, a build
# matrix, job outputs, artifacts passed from the builds to the release job
# and a summary, on a private local farm.
set -euo pipefail
KILN=${1:?usage: demo.sh PATH-TO-kiln}
KILN=$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/kiln-demo.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
g() { git -C "$DIR/greet" -c user.name="Kiln demo" -c user.email=demo@example.com "$@"; }
cp -r "$HERE/project" "$DIR/greet"
git init -q -b main "$DIR/greet"
g remote add origin https://example.com/acme/greet.git
g add -A
g commit -qm "greet: first"
g tag -a v1.0 -m "greet 1.0"
echo "/bin/" >"$DIR/greet/.gitignore"
g add -A
g commit -qm "greet: ignore the build"
echo "+ cd <a new git repository of examples/project> && kiln run .github/workflows/ci.yml"
cd "$DIR/greet"
"$KILN" run .github/workflows/ci.yml

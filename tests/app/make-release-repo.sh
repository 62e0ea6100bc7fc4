#!/bin/sh
# make-release-repo.sh [--bare] TARGET_DIR
#
# Build a git repository of the sample backend with three tagged releases, for deploy and
# rollback tests:
#   v1.0.0          package.json version 1.0.0  (/health/detailed "release": "1.0.0")
#   v1.1.0          package.json version 1.1.0  (branch main points here)
#   v1.2.0-broken   version 1.2.0 plus a TypeScript error: `npm run build` fails (branch broken)
#
# Rerunning recreates the same repository: fixed author, committer and dates give the same
# commit ids for the same sources. node_modules/ and dist/ are never included.
# --bare makes TARGET_DIR a bare repository (what a git server exports).
set -eu

bare=0
if [ "${1:-}" = "--bare" ]; then
    bare=1
    shift
fi
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 [--bare] TARGET_DIR" >&2
    exit 2
fi

src=$(cd "$(dirname "$0")" && pwd)
target=$1
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
target=${target%/}
case "$target" in
    "" | / | "$src" | "$src"/*)
        echo "refusing to use $1 as TARGET_DIR" >&2
        exit 2
        ;;
esac

# Only ever delete a directory this script made (marked in its git config) or an empty one.
if [ -e "$target" ]; then
    made=$(git --git-dir="$target/.git" config --get ywm.sampleapp 2>/dev/null ||
        git --git-dir="$target" config --get ywm.sampleapp 2>/dev/null || true)
    if [ "$made" != "true" ] && [ -n "$(ls -A "$target" 2>/dev/null)" ]; then
        echo "$target exists and was not made by $0: not touching it" >&2
        exit 1
    fi
    rm -rf "$target"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo="$work/repo"
mkdir "$repo"

# The app's files: what git tracks or would track here, else everything but build output.
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files --cached --others --exclude-standard -z . | tar --null -T - -cf -) | tar -xf - -C "$repo"
else
    (cd "$src" && tar --exclude=./node_modules --exclude=./dist -cf - .) | tar -xf - -C "$repo"
fi
rm -rf "$repo/node_modules" "$repo/dist"

export GIT_AUTHOR_NAME="ywmessaging lab" GIT_AUTHOR_EMAIL="lab@example.invalid"
export GIT_COMMITTER_NAME="ywmessaging lab" GIT_COMMITTER_EMAIL="lab@example.invalid"
export GIT_CONFIG_NOSYSTEM=1 HOME="$work"
g() { git -C "$repo" -c core.autocrlf=false -c commit.gpgsign=false -c tag.gpgsign=false "$@"; }

set_version() {
    python3 - "$repo" "$1" <<'EOF'
import json, sys
repo, version = sys.argv[1], sys.argv[2]
for name in ("package.json", "package-lock.json"):
    path = f"{repo}/{name}"
    with open(path) as f:
        data = json.load(f)
    data["version"] = version
    if name == "package-lock.json":
        data["packages"][""]["version"] = version
    with open(path, "w") as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
EOF
}

release() { # release VERSION TAG DATE MESSAGE
    export GIT_AUTHOR_DATE="$3" GIT_COMMITTER_DATE="$3"
    g add -A
    g commit -q -m "$4"
    g tag -a "$2" -m "Release $2"
}

g init -q -b main
set_version 1.0.0
release 1.0.0 v1.0.0 "2026-01-01T00:00:00+0000" "Sample backend 1.0.0"

set_version 1.1.0
release 1.1.0 v1.1.0 "2026-01-02T00:00:00+0000" "Sample backend 1.1.0"

g checkout -q -b broken
set_version 1.2.0
cat >"$repo/src/broken.ts" <<'EOF'
// Release v1.2.0-broken: this type error makes `npm run build` fail on purpose, so deploy
// tests can check that a failed build never replaces the running release.
export const releaseNumber: number = 'one point two';
EOF
release 1.2.0 v1.2.0-broken "2026-01-03T00:00:00+0000" "Sample backend 1.2.0 (build deliberately broken)"
g checkout -q main

if [ "$bare" = 1 ]; then
    git clone -q --bare "$repo" "$target"
    git --git-dir="$target" config ywm.sampleapp true
    # clone --bare only copies branches and tags reachable by default: make sure all are there
    git --git-dir="$target" fetch -q "$repo" "+refs/heads/*:refs/heads/*" "+refs/tags/*:refs/tags/*"
else
    mkdir -p "$(dirname "$target")"
    mv "$repo" "$target"
    git -C "$target" config ywm.sampleapp true
fi

for t in v1.0.0 v1.1.0 v1.2.0-broken; do
    printf '%s %s\n' "$t" "$(git --git-dir="$( [ "$bare" = 1 ] && echo "$target" || echo "$target/.git")" rev-parse "$t^{commit}")"
done

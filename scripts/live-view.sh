#!/usr/bin/env bash
# Records what `imagespec build`'s live view shows on a terminal: runs a build inside a tmux
# pane, captures the pane every half second (`tmux capture-pane -p`) until the build ends,
# and writes a Markdown page with the command and a few of the frames (docs/live-view.md).
#
#   scripts/live-view.sh [OUT.md]
#
# Needs the e2e services (scripts/e2e/up.sh && scripts/e2e/base-images.sh: dockerd and the
# registry at 127.0.0.1:5000 with the base images). Installs tmux with apt when it is missing.
# Settings (environment):
#   IMAGESPEC_BIN     the binary (default target/debug/imagespec, built when missing)
#   LIVE_VIEW_WIDTH   the pane's columns (default 100), LIVE_VIEW_HEIGHT its rows (40)
#   LIVE_VIEW_NAME    the image's repository name (default h-live-view)
#   LIVE_VIEW_FRAMES  a directory to keep every frame in: NNN.txt as the pane shows it,
#                     NNN.joined.txt with wrapped lines joined (`capture-pane -J`), and
#                     `exit` with the build's exit code (tests/cli_progress.rs reads them)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/live-view.md}
width=${LIVE_VIEW_WIDTH:-100}
height=${LIVE_VIEW_HEIGHT:-40}
name=${LIVE_VIEW_NAME:-h-live-view}
bin=${IMAGESPEC_BIN:-target/debug/imagespec}

if ! command -v tmux >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq tmux >/dev/null
fi
[ -x "$bin" ] || cargo build -q
bin=$(realpath "$bin")
set -a
# shellcheck disable=SC1091
. "${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}/e2e.env"
set +a

work=$(mktemp -d)
session="live-view-$$"
# A tmux server of its own: the pane gets this script's environment (a running server would
# give it its own), and ending it ends everything in it.
tmux() { command tmux -L "$session" "$@"; }
cleanup() {
    tmux kill-server 2>/dev/null || true
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$session"
    rm -rf "$work"
}
trap cleanup EXIT

# A spec whose build shows each kind of step: apt and Python packages, commands that print
# (one line longer than any terminal: the view cuts it), the dependency image pushed by
# dockerd and the source appended in the registry (bytes pushed). RUN_ID makes every run
# build anew.
mkdir -p "$work/src/app"
for i in 1 2 3 4 5 6 7 8; do printf 'VALUE = %s\n' "$i" >"$work/src/app/m$i.py"; done
head -c 3000000 /dev/urandom >"$work/src/app/model.bin"
cat >"$work/spec.toml" <<EOF
name = "$name"
registry = "$IMAGESPEC_E2E_REGISTRY"
base_image = "$IMAGESPEC_E2E_BASE_PYTHON"
apt_packages = ["jq"]
packages = ["six"]
env = { RUN_ID = "$(date +%s%N)" }
commands = ["for i in 1 2 3 4 5 6; do echo \"line \$i: \$(printf 'x%.0s' \$(seq 1 400)) END-OF-LONG-LINE\"; sleep 0.5; done"]
source_root = "src"
source_copy_mode = "all"
builder_config = { uv_image = "$IMAGESPEC_E2E_UV_IMAGE" }
builder_options = { add_flytekit = false, commands_before_copy = true }
EOF

# A person at a terminal: `CI` (set by the test harness) would make `--progress auto` plain.
command="imagespec build spec.toml"
tmux new-session -d -s "$session" -x "$width" -y "$height" \
    "cd '$work' && unset CI && PATH='$(dirname "$bin"):$PATH' IMAGESPEC_NO_DAEMONLESS=1 IMAGESPEC_NO_CACHE=1 $command; echo \$? >'$work/exit'; sleep 600"
frames="$work/frames"
mkdir -p "$frames"
# At most 5 minutes (600 frames).
for i in $(seq -w 1 600); do
    sleep 0.5
    tmux capture-pane -p -t "$session" >"$frames/$i.txt"
    tmux capture-pane -p -J -t "$session" >"$frames/$i.joined.txt"
    [ -f "$work/exit" ] && break
done
if [ -n "${LIVE_VIEW_FRAMES:-}" ]; then
    mkdir -p "$LIVE_VIEW_FRAMES"
    cp "$frames"/*.txt "$LIVE_VIEW_FRAMES/"
    [ -f "$work/exit" ] && cp "$work/exit" "$LIVE_VIEW_FRAMES/"
fi
if [ ! -f "$work/exit" ]; then
    echo "live-view: the build did not end within 5 minutes; the pane shows:" >&2
    tmux capture-pane -p -t "$session" >&2
    exit 1
fi

# The page: frames where a step runs (spread over the build), and the last one.
running=()
for f in "$frames"/[0-9][0-9][0-9].txt; do
    grep -q '^\[+\] Building .*([0-9]*/[0-9]*)$' "$f" && running+=("$f")
done
picked=()
n=${#running[@]}
for k in 1 2 3 4; do
    [ "$n" -gt 0 ] && picked+=("${running[$(((n - 1) * k / 4))]}")
done
last=$(find "$frames" -name '[0-9][0-9][0-9].txt' | sort | tail -1)
{
    echo "# The live view of \`imagespec build\`"
    echo
    echo "What \`imagespec build\` shows on a terminal (\`--progress tty\`, the default on one),"
    echo "captured from a ${width}x${height} tmux pane every half second by"
    echo "\`scripts/live-view.sh\` (which wrote this page). The build:"
    echo
    echo '```console'
    echo "\$ $command"
    echo '```'
    echo
    echo "with this spec (the dependency image is built by dockerd and pushed, then the source is"
    echo "appended to it in the registry; \`commands\` print a line longer than the pane):"
    echo
    echo '```toml'
    cat "$work/spec.toml"
    echo '```'
    echo
    echo "The header counts the steps done of those BuildKit announced; each running step has a"
    echo "spinner, its last line of output (cut to the pane's width) or the bytes pushed, and its"
    echo "time; finished steps stay above, \`CACHED\` when BuildKit had them."
    i=0
    for f in "${picked[@]}" "$last"; do
        i=$((i + 1))
        echo
        if [ "$f" = "$last" ]; then echo "At the end (exit code $(cat "$work/exit")):"; else echo "Frame $i:"; fi
        echo
        echo '```text'
        # Trailing blank rows of the pane dropped.
        sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$f"
        echo '```'
    done
} >"$out"
echo "live-view: wrote $out ($(find "$frames" -name '[0-9][0-9][0-9].txt' | wc -l) frames, exit $(cat "$work/exit"))"

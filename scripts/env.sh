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
# Source me (bash or zsh) after scripts/setup.sh:   source scripts/env.sh
# Activates .venv and puts the colcon install of ros2_nano_llm in front, so that
# `import ros2_nano_llm.msg`, `ros2_nano_llm.chat`, `nano_llm_node` and the package's share dir
# (ament_index_python) all resolve. Safe to source more than once.
# The Jazzy leg (after `bash scripts/setup.sh --distro jazzy`), in a fresh shell:
#   NANO_LLM_DISTRO=jazzy source scripts/env.sh     # .venv-jazzy and install-jazzy/
# colcon's install/setup.bash is not enough with the PyPI ROS wheels: it does not know the venv
# prefix (AMENT_PREFIX_PATH) and puts nothing of the venv on the paths.

if [ -n "${BASH_VERSION:-}" ]; then
  _nano_llm_here="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296
  _nano_llm_here="${(%):-%x}"
else
  _nano_llm_here="$0"
fi
_nano_llm_root="$(cd "$(dirname "$_nano_llm_here")/.." && pwd)"
case "${NANO_LLM_DISTRO:-kilted}" in
  kilted)
    _nano_llm_venv="${NANO_LLM_VENV:-$_nano_llm_root/.venv}"
    _nano_llm_install="$_nano_llm_root/install/ros2_nano_llm" ;;
  jazzy)
    _nano_llm_venv="${NANO_LLM_VENV_JAZZY:-$_nano_llm_root/.venv-jazzy}"
    _nano_llm_install="$_nano_llm_root/install-jazzy/ros2_nano_llm" ;;
  *)
    _nano_llm_venv=''
    _nano_llm_install='' ;;
esac

# _nano_llm_prepend VAR DIR: put DIR first in the path list VAR, removing older copies.
# Plain parameter expansion only: this file is sourced by scripts running under set -euo pipefail.
_nano_llm_prepend() {
  eval "_nano_llm_list=\":\${$1:-}:\""
  while [ "${_nano_llm_list#*:"$2":}" != "$_nano_llm_list" ]; do
    _nano_llm_list="${_nano_llm_list%%:"$2":*}:${_nano_llm_list#*:"$2":}"
  done
  _nano_llm_list="${_nano_llm_list#:}"
  _nano_llm_list="${_nano_llm_list%:}"
  export "$1=$2${_nano_llm_list:+:$_nano_llm_list}"
  unset _nano_llm_list
}

if [ ! -f "$_nano_llm_venv/bin/activate" ] \
    || [ ! -f "$_nano_llm_install/share/ros2_nano_llm/package.xml" ]; then
  echo "env.sh: not set up yet; run: bash $_nano_llm_root/scripts/setup.sh" \
    "--distro ${NANO_LLM_DISTRO:-kilted}" >&2
  unset _nano_llm_here _nano_llm_root _nano_llm_venv _nano_llm_install
  unset -f _nano_llm_prepend
  return 1 2>/dev/null || exit 1
fi

# shellcheck disable=SC1091
. "$_nano_llm_venv/bin/activate"

for _nano_llm_sp in "$_nano_llm_install"/lib/python3*/site-packages; do
  _nano_llm_prepend PYTHONPATH "$_nano_llm_sp"
done
_nano_llm_prepend LD_LIBRARY_PATH "$_nano_llm_install/lib"
_nano_llm_prepend AMENT_PREFIX_PATH "$_nano_llm_venv"
_nano_llm_prepend AMENT_PREFIX_PATH "$_nano_llm_install"
_nano_llm_prepend CMAKE_PREFIX_PATH "$_nano_llm_venv"
_nano_llm_prepend PATH "$_nano_llm_install/lib/ros2_nano_llm"

# Talk DDS on this machine only unless told otherwise; FastDDS is the RMW the venv has.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export NANO_LLM_ROOT="$_nano_llm_root"
export NANO_LLM_DISTRO="${NANO_LLM_DISTRO:-kilted}"

unset _nano_llm_here _nano_llm_root _nano_llm_venv _nano_llm_install _nano_llm_sp
unset -f _nano_llm_prepend

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
# The main job in one command: set up, then two scripted turns of one chat (the second reuses
# the first's KV cache) with the embedded SmolLM2-135M.
#   bash scripts/demo.sh                         # the default question
#   bash scripts/demo.sh --max-new-tokens 64     # more options of python3 -m ros2_nano_llm.chat
#   bash scripts/demo.sh --prompt 'Hi!' --prompt 'And again?'   # your own turns instead

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
# -P: never put the current directory on sys.path (in the repository root the source tree, which
# has no generated msg/ and srv/, would shadow the install).
default_prompt=(--prompt 'What is a robot? Answer in two sentences.'
                --prompt 'Name three robots from movies.' --repetition-penalty 1.1 --print-stats)
for arg in "$@"; do
  case "$arg" in --prompt|--prompt=*) default_prompt=() ;; esac
done
exec python3 -P -m ros2_nano_llm.chat --api auto --model default "${default_prompt[@]}" "$@"

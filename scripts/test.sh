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
# The test command: set up (fast when already done), then pytest over test/.
#   bash scripts/test.sh                       # everything
#   bash scripts/test.sh test/test_build.py    # one file; any pytest arguments pass through
#   bash scripts/test.sh -m 'not linter' -x
# Exits with pytest's exit code (5 when no test ran).

set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$ROOT/scripts/setup.sh" || exit $?
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh" || exit 1
cd "$ROOT" || exit 1
# The pytest script, not `python -m pytest`: that would put the source tree (which has no
# generated msg/ and srv/) ahead of the install on sys.path. pytest.ini's testpaths = test.
pytest "$@"
rc=$?
[ "$rc" = 5 ] && echo "test.sh: pytest collected no tests (exit code 5)" >&2
exit "$rc"

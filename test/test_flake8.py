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
"""
ament_flake8 over the package's Python, the way ROS 2 packages run it.

It runs in a process of its own: flake8 forks a pool of workers, and a fork of this test
process (which may hold rclpy nodes and threads of earlier tests) can crash in the child.
"""

import subprocess
import sys

from ament_flake8.main import main_with_errors
import pytest

_RUN = ('import sys; from ament_flake8.main import main_with_errors; '
        'rc, errors = main_with_errors(argv=sys.argv[1:]); '
        'print(*errors, sep="\\n", file=sys.stderr); sys.exit(rc)')


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(lint_paths):
    done = subprocess.run([sys.executable, '-c', _RUN, *map(str, lint_paths)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f'code style errors / warnings:\n{done.stderr}'


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8_plugins_are_active(tmp_path):
    # ament_flake8 runs without its plugins too, and then passes far more than it should.
    bad = tmp_path / 'bad.py'
    bad.write_text(
        'import sys\n'
        'import os\n'
        'x = "double"\n'
        'list = [a for a in (1, 2)]\n'
        'try:\n'
        '    pass\n'
        'except:\n'
        '    pass\n'
        'print(sys, os, x)\n')
    rc, errors = main_with_errors(argv=[str(bad)])
    codes = {error.split(': ')[1].split()[0] for error in errors}
    # flake8-import-order (google), flake8-quotes, flake8-builtins, flake8-comprehensions,
    # flake8-blind-except
    assert {'I100', 'Q000', 'A001', 'C416', 'B901'} <= codes, errors
    assert rc != 0

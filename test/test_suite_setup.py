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
"""How the suite runs: the ROS domain the user chose; `python -m pytest` (issue 21 items 5, 6)."""

import os
import subprocess
import sys


def test_an_explicit_ros_domain_id_is_honoured(repo_root):
    env = dict(os.environ, ROS_DOMAIN_ID='42')
    env.pop('ROS2_NANO_LLM_TEST_DOMAIN_ID', None)
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '--collect-only', '-p', 'no:cacheprovider',
         'test/test_copyright.py'],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    header = [line for line in out.stdout.splitlines() if line.startswith('ROS_DOMAIN_ID=')]
    assert header and header[0].startswith('ROS_DOMAIN_ID=42 '), out.stdout[-2000:]


def test_python_m_pytest_of_the_launch_tests_says_what_to_run(repo_root):
    # issue 21 item 5: it collected nothing and skipped quietly (the source tree shadows the
    # install); now it stops with what to run
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', 'test/launch'],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0, out.stdout[-2000:]
    assert 'pytest test/launch' in out.stdout + out.stderr, out.stdout[-2000:]

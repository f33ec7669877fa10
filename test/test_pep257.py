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
"""ament_pep257 over the package's Python, the way ROS 2 packages run it."""

import logging
import re

from ament_pep257.main import main
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(lint_paths, capsys, caplog):
    # pydocstyle logs every file it checks at INFO: keep that out of a failure report.
    caplog.set_level(logging.WARNING, logger='pydocstyle.utils')
    rc = main(argv=list(lint_paths))
    # stderr: one line per error, then a count ('N errors'), which is not an error itself.
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.strip() and not re.fullmatch(r'\d+ errors?', line.strip())]
    assert rc == 0, \
        'Found %d docstring errors:\n' % len(errors) + '\n'.join(errors)

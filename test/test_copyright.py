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
Every source file starts with the project's Apache-2.0 header.

ament_copyright has no PyPI wheel, so this is the same check done here: the copyright line
(any year or year range) and the Apache-2.0 notice, exactly as in ros2_nano_llm/models/base.py,
at the top of the file (after a shebang line, if any). Empty files need no header.
"""

import pathlib
import re

import pytest

COPYRIGHT = re.compile(r'# Copyright (19|20)\d\d(-(19|20)\d\d)? The ros2_nano_llm Authors')
LICENSE = """\
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
# limitations under the License.""".splitlines()

# Shell scripts of the build and CI carry the header too.
EXTRA_FILES = ('.ci/run', 'scripts/setup.sh', 'scripts/env.sh', 'scripts/test.sh',
               'scripts/demo.sh')


def header_problem(path):
    """Return why ``path`` lacks the header, or ``None`` when it has it (or is empty)."""
    text = pathlib.Path(path).read_text(encoding='utf-8')
    if not text.strip():
        return None
    lines = text.splitlines()
    if lines[0].startswith('#!'):
        lines = lines[1:]
    if not lines or not COPYRIGHT.fullmatch(lines[0]):
        return 'line 1 is not "# Copyright <year> The ros2_nano_llm Authors"'
    for number, (want, got) in enumerate(zip(LICENSE, lines[1:] + [''] * len(LICENSE)), 2):
        if got.rstrip() != want:
            return f'license notice line {number}: expected {want!r}, found {got!r}'
    return None


def source_files(repo_root, lint_paths):
    """List the Python files under ``lint_paths`` and the ``EXTRA_FILES`` that exist."""
    files = []
    for target in map(pathlib.Path, lint_paths):
        if target.is_dir():
            files += [p for p in sorted(target.rglob('*.py')) if '__pycache__' not in p.parts]
        else:
            files.append(target)
    files += [repo_root / name for name in EXTRA_FILES if (repo_root / name).exists()]
    return files


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright(repo_root, lint_paths):
    files = source_files(repo_root, lint_paths)
    assert len(files) > 3, files
    problems = []
    for path in files:
        problem = header_problem(path)
        if problem:
            problems.append(f'{path.relative_to(repo_root)}: {problem}')
    assert not problems, \
        'Found %d files without the copyright header:\n' % len(problems) + '\n'.join(problems)


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright_check_rejects_bad_headers(repo_root, tmp_path):
    good = (repo_root / 'test' / 'test_copyright.py').read_text(encoding='utf-8')
    cases = {
        'good.py': (good, None),
        'shebang.py': ('#!/usr/bin/env python3\n' + good, None),
        'range.py': (good.replace('2026', '2025-2026', 1), None),
        'empty.py': ('\n', None),
        'none.py': ('"""No header."""\n', 'line 1'),
        'holder.py': (good.replace('The ros2_nano_llm Authors', 'Someone Else', 1), 'line 1'),
        'mit.py': (good.replace('Apache License, Version 2.0', 'MIT License', 1), 'line 3'),
        'cut.py': ('\n'.join(good.splitlines()[:5]) + '\n', 'line 6'),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding='utf-8')
        problem = header_problem(path)
        if expected is None:
            assert problem is None, (name, problem)
        else:
            assert problem is not None and expected in problem, (name, problem)

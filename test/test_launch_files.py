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
The launch files leave the params file in charge (issue 21 item 2), read from their source.

``launch``/``launch_ros`` are not installable from PyPI, so this reads the files' syntax
tree; test/launch runs them for real on a full ROS 2 install. An argument that names a
parameter defaults to '' ("what the params file says"), the api argument's description comes
from the code's table of backends, and no parameter is forced by the launch (a forced
``autostart: false`` made ``ros2 param load`` of config/nano_llm.yaml fail).
"""

import ast

import pytest

LAUNCH_FILES = ('launch/nano_llm.launch.py', 'launch/nano_llm_camera.launch.py')
PARAMETER_ARGUMENTS = ('api', 'autostart')


def declared_arguments(tree):
    """Return {name: (default ast node, description ast node)} of the DeclareLaunchArgument."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument':
            keywords = {k.arg: k.value for k in node.keywords}
            found[node.args[0].value] = (keywords.get('default_value'),
                                         keywords.get('description'))
    return found


@pytest.mark.parametrize('path', LAUNCH_FILES)
def test_parameter_arguments_default_to_the_params_file(repo_root, path):
    arguments = declared_arguments(ast.parse((repo_root / path).read_text()))
    for name in PARAMETER_ARGUMENTS:
        if name in arguments:
            default, _ = arguments[name]
            assert isinstance(default, ast.Constant) and default.value == '', \
                f'{path}: {name} defaults to {ast.unparse(default)}, not the params file'


def test_api_description_lists_every_backend_from_the_table(repo_root):
    tree = ast.parse((repo_root / LAUNCH_FILES[0]).read_text())
    _, description = declared_arguments(tree)['api']
    names = {n.id for n in ast.walk(description) if isinstance(n, ast.Name)}
    assert 'APIS' in names, ast.unparse(description)
    assert any(isinstance(n, ast.ImportFrom) and n.module == 'ros2_nano_llm.settings'
               and 'APIS' in [a.name for a in n.names] for n in ast.walk(tree))


@pytest.mark.parametrize('path', LAUNCH_FILES)
def test_no_parameter_is_forced(repo_root, path):
    tree = ast.parse((repo_root / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            assert 'autostart' not in keys, f'{path}: {ast.unparse(node)}'

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
The camera launch's default model offline: configure fails with one clear sentence.

nano_llm_camera.launch.py defaults to a hub id (a vision model). Without network or the hub
cache it cannot load; the node must stay up, unconfigured, and say what to do, in text
without a doubled period ("SmolLM2.. Fix").
"""

import ast
import pathlib

from node_harness import start_node, stop_node
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAMERA_LAUNCH = pathlib.Path(__file__).resolve().parents[2] / 'launch' / \
    'nano_llm_camera.launch.py'


def camera_launch_default_model():
    """Return the default of the camera launch file's ``model`` argument (read, not run)."""
    tree = ast.parse(CAMERA_LAUNCH.read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, 'id', '') ==
                'DeclareLaunchArgument' and node.args and
                isinstance(node.args[0], ast.Constant) and node.args[0].value == 'model'):
            for keyword in node.keywords:
                if keyword.arg == 'default_value':
                    return ast.literal_eval(keyword.value)
    raise AssertionError(f'no model argument in {CAMERA_LAUNCH}')


def test_offline_hub_model_fails_configure_clearly(tmp_path, monkeypatch):
    model = camera_launch_default_model()
    assert '/' in model and not pathlib.Path(model).exists()  # a hub id
    # No network here anyway; offline mode makes the hub client fail at once.
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    process, client = start_node(tmp_path, {'model': model}, activate=False)
    try:
        assert client.transition('configure') is False
        assert client.state() == 'unconfigured' and process.alive
        line = process.wait_for_log(r'configure failed: [^\n]*and configure again').group(0)
        assert f"could not download '{model}'" in line
        assert '..' not in line, line
        assert 'Without network, pass a local model directory' in line
        assert 'Fix the parameter (ros2 param set' in line
    finally:
        stop_node(process, client)

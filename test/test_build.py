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
The colcon install of the package works: interfaces, Python namespace, executable, share dir.

Each check runs in a fresh ``bash`` that sources ``scripts/env.sh`` from an environment with
everything of this checkout removed, in a directory outside the checkout, so it proves what a
user gets after ``bash scripts/setup.sh && source scripts/env.sh``.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

PKG = 'ros2_nano_llm'
ROOT = pathlib.Path(__file__).resolve().parent.parent
# scripts/env.sh exports the distro it set up; the Jazzy leg installs into install-jazzy/.
DISTRO = os.environ.get('NANO_LLM_DISTRO', 'kilted')
INSTALL = ROOT / ('install' if DISTRO == 'kilted' else f'install-{DISTRO}') / PKG
SITE = INSTALL / 'lib' / f'python{sys.version_info[0]}.{sys.version_info[1]}' / 'site-packages'

PROBE = r"""
import json, os, shutil, sys
from rclpy.serialization import deserialize_message, serialize_message
from ros2_nano_llm.msg import ChatEntry, StreamToken
from ros2_nano_llm.srv import GetHistory
import ros2_nano_llm
import ros2_nano_llm.models.base
from ament_index_python.packages import get_package_share_directory

token = StreamToken(turn_id=7, token_index=3, text='héllo', eos=True)
token.header.frame_id = 'nano_llm'
back = deserialize_message(serialize_message(token), StreamToken)
entry = ChatEntry(role='bot', type='text', text='hi', num_tokens=2, cached=True)
response = GetHistory.Response(success=True, entries=[entry], cache_tokens=5, context_len=8192)
response_back = deserialize_message(serialize_message(response), GetHistory.Response)
sys.stdout.write(json.dumps({
    'token': [back.turn_id, back.token_index, back.text, back.eos, back.header.frame_id],
    'entries': [[e.role, e.type, e.text, e.num_tokens, e.cached] for e in response_back.entries],
    'response': [response_back.success, response_back.cache_tokens, response_back.context_len],
    'msg_file': sys.modules['ros2_nano_llm.msg'].__file__,
    'init_file': ros2_nano_llm.__file__,
    'base_file': ros2_nano_llm.models.base.__file__,
    'all': list(getattr(ros2_nano_llm, '__all__', [])),
    'share': get_package_share_directory('ros2_nano_llm'),
    'node': shutil.which('nano_llm_node'),
    'env': {k: os.environ.get(k) for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION')},
}))
"""


def run_with_env_sh(code, cwd):
    """Run ``python3 -c code`` in bash after ``source scripts/env.sh``; return stdout."""
    env = {key: value for key, value in os.environ.items()
           if key not in ('PYTHONPATH', 'AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH',
                          'LD_LIBRARY_PATH', 'VIRTUAL_ENV', 'PYTHONHOME',
                          'ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION',
                          '_ROS_WHEELS_BOOTSTRAP_COMPLETE')}
    env['PATH'] = os.pathsep.join(
        part for part in env.get('PATH', '').split(os.pathsep) if str(ROOT) not in part)
    result = subprocess.run(
        ['bash', '-c', f'source "{ROOT}/scripts/env.sh" && exec python3 -c "$0"', code],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.fixture(scope='module')
def probe(tmp_path_factory):
    """Return what a fresh Python sees through env.sh (see ``PROBE``)."""
    if not (INSTALL / 'share' / PKG / 'package.xml').exists():
        pytest.fail(f'{INSTALL} is missing: run bash scripts/setup.sh')
    out = run_with_env_sh(PROBE, tmp_path_factory.mktemp('elsewhere'))
    return json.loads(out.strip().splitlines()[-1])


def test_generated_interfaces_import_and_round_trip(probe):
    assert probe['token'] == [7, 3, 'héllo', True, 'nano_llm']
    assert probe['entries'] == [['bot', 'text', 'hi', 2, True]]
    assert probe['response'] == [True, 5, 8192]


def test_every_interface_file_is_generated(probe):
    names = {kind: sorted(p.stem for p in (ROOT / kind).glob(f'*.{kind}'))
             for kind in ('msg', 'srv', 'action')}
    assert names['msg'] and names['srv'] and names['action']
    code = (
        'import ros2_nano_llm.msg as m, ros2_nano_llm.srv as s, ros2_nano_llm.action as a\n'
        f'print(all(hasattr(m, n) for n in {names["msg"]!r}), '
        f'all(hasattr(getattr(s, n), "Request") for n in {names["srv"]!r}), '
        f'all(hasattr(getattr(a, n), "Goal") for n in {names["action"]!r}))')
    assert run_with_env_sh(code, ROOT / 'test').split() == ['True', 'True', 'True']


GENERATE_PROBE = r"""
import json, sys
from rclpy.serialization import deserialize_message, serialize_message
from ros2_nano_llm.action import Generate
from ros2_nano_llm.msg import FunctionCall

goal = Generate.Goal(prompt='turn left', tool_choice='required', max_new_tokens=32, reset=True)
goal.image.width, goal.image.height, goal.image.encoding = 2, 1, 'rgb8'
goal.image.step, goal.image.data = 6, bytes(range(6))
goal_back = deserialize_message(serialize_message(goal), Generate.Goal)
call = FunctionCall(name='turn', args_json='{"degrees": 90}', result='ok', success=True,
                    turn_id=4)
call.header.frame_id = 'nano_llm'
result = Generate.Result(reply='done', stop_reason='eos', calls=[call],
                         time_to_first_token=0.25, decode_rate=40.5)
result_back = deserialize_message(serialize_message(result), Generate.Result)
feedback = deserialize_message(
    serialize_message(Generate.Feedback(text='piece', token_index=9)), Generate.Feedback)
empty = Generate.Goal()
sys.stdout.write(json.dumps({
    'goal': [goal_back.prompt, goal_back.tool_choice, goal_back.max_new_tokens, goal_back.reset,
             goal_back.image.width, list(goal_back.image.data)],
    'empty_goal': [empty.prompt, empty.tool_choice, empty.max_new_tokens, empty.reset,
                   len(empty.image.data)],
    'result': [result_back.reply, result_back.stop_reason, result_back.time_to_first_token,
               result_back.decode_rate],
    'calls': [[c.name, c.args_json, c.result, c.success, c.turn_id, c.header.frame_id]
              for c in result_back.calls],
    'feedback': [feedback.text, feedback.token_index],
    'services': sorted(n for n in dir(Generate.Impl) if not n.startswith('_')),
}))
"""


def test_generate_action_and_function_call_round_trip(probe):
    out = json.loads(run_with_env_sh(GENERATE_PROBE, ROOT / 'test').strip().splitlines()[-1])
    assert out['goal'] == ['turn left', 'required', 32, True, 2, [0, 1, 2, 3, 4, 5]]
    # The defaults mean 'use the node's parameters' and 'no image'.
    assert out['empty_goal'] == ['', '', 0, False, 0]
    assert out['result'] == ['done', 'eos', 0.25, 40.5]
    assert out['calls'] == [['turn', '{"degrees": 90}', 'ok', True, 4, 'nano_llm']]
    assert out['feedback'] == ['piece', 9]
    assert {'SendGoalService', 'GetResultService', 'FeedbackMessage'} <= set(out['services'])


def test_one_python_namespace_with_generated_modules(probe):
    # Generated msg/ and our subpackages come from the same installed directory.
    pkg_dir = SITE / PKG
    assert pathlib.Path(probe['msg_file']).parent.parent == pkg_dir
    assert pathlib.Path(probe['base_file']).parent.parent == pkg_dir
    assert pathlib.Path(probe['init_file']).parent == pkg_dir


def test_installed_init_is_ours_not_the_generated_one(probe):
    installed = pathlib.Path(probe['init_file'])
    ours = ROOT / PKG / '__init__.py'
    # --symlink-install: a link to the source file; a plain install: a copy of it.
    assert installed.resolve() == ours or installed.read_bytes() == ours.read_bytes()
    assert ours.read_text(encoding='utf-8').strip(), 'the source __init__.py is empty'


def test_package_exports_nanollm(probe):
    assert 'NanoLLM' in probe['all']
    out = run_with_env_sh('import ros2_nano_llm as p; print(p.NanoLLM.__name__)', ROOT)
    assert out.split() == ['NanoLLM']


def test_install_tree_matches_sources():
    # A file added after the last build is missing here until scripts/setup.sh runs again.
    sources = sorted(p.relative_to(ROOT / PKG) for p in (ROOT / PKG).rglob('*')
                     if p.is_file() and '__pycache__' not in p.parts and p.suffix != '.pyc')
    missing = [str(p) for p in sources if not (SITE / PKG / p).is_file()]
    assert not missing, f'not installed (run bash scripts/setup.sh): {missing}'


def test_executable_installed_and_on_path(probe):
    exe = INSTALL / 'lib' / PKG / 'nano_llm_node'
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert probe['node'] == str(exe)
    text = exe.read_text(encoding='utf-8')
    assert text.startswith('#!') and 'from ros2_nano_llm.ros.node import main' in text


def test_node_entry_point_resolves():
    code = 'from ros2_nano_llm.ros.node import main; print(callable(main))'
    assert run_with_env_sh(code, ROOT / 'test').split() == ['True']


def test_share_dir_has_manifest_interfaces_launch_and_config(probe):
    share = pathlib.Path(probe['share'])
    assert share == INSTALL / 'share' / PKG
    assert (share / 'package.xml').is_file()
    for kind in ('msg', 'srv', 'action'):
        for source in (ROOT / kind).glob(f'*.{kind}'):
            assert (share / kind / source.name).is_file(), source.name
    for sub in ('launch', 'config'):
        assert (share / sub).is_dir(), sub
        for source in (ROOT / sub).rglob('*'):
            if source.is_file():
                assert (share / source.relative_to(ROOT)).is_file(), source
    index = INSTALL / 'share' / 'ament_index' / 'resource_index'
    assert (index / 'packages' / PKG).is_file()
    interfaces = (index / 'rosidl_interfaces' / PKG).read_text()
    assert 'msg/StreamToken.msg' in interfaces and 'action/Generate.action' in interfaces


def test_env_sh_sets_local_discovery_and_fastdds(probe):
    assert probe['env'] == {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                            'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}


def test_setup_py_builds_a_wheel_of_the_library(tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
         '-w', str(tmp_path), str(ROOT)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    (wheel,) = tmp_path.glob('ros2_nano_llm-*.whl')
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith('.dist-info/entry_points.txt'))
    assert {'ros2_nano_llm/__init__.py', 'ros2_nano_llm/models/base.py'} <= names
    assert not any(n.startswith(('ros2_nano_llm/msg/', 'ros2_nano_llm/srv/',
                                 'ros2_nano_llm/action/')) for n in names)
    assert 'nano_llm_node = ros2_nano_llm.ros.node:main' in entry_points

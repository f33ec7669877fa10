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
Settings that would make every prompt fail are refused with the reason (issue 11 items 5, 6).

One node process (a tiny random-weight Llama at a 512-token context, so the chat holds at
most 256 tokens) is offered a ``wrap_tokens`` that can never wrap, a system prompt that
leaves no room for the chat and a ``reply_prefix`` longer than the room kept for replies.
Each is refused when set, the chat goes on, and many turns later prompts still fit; a
configure with such a system prompt fails with the reason. A parameter dump (what ``ros2
param dump`` writes) restarts a node with the same settings (issue 21 item 3).
"""

import array

from node_harness import grep, REPO_ROOT, start_node, stop_node
import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import ListParameters
from rclpy.parameter import parameter_value_to_python
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTEXT = 512


@pytest.fixture(scope='module')
def live(tiny_model_dir, tmp_path_factory):
    """Start one node at a 512-token context."""
    process, client = start_node(tmp_path_factory.mktemp('node_settings'),
                                 {'model': tiny_model_dir('llama'),
                                  'max_context_len': CONTEXT, 'max_new_tokens': 16})
    try:
        yield process, client
    finally:
        stop_node(process, client)


@pytest.fixture
def node(live):
    """Return (process, client) with an empty chat; check it is still usable afterwards."""
    process, client = live
    assert client.call('reset').success
    yield process, client
    assert process.alive, process.log()[-3000:]
    _, reply = client.ask('Are you still fine?')
    assert client.history_texts()[-1] == ('bot', 'text', reply)


def _turns(client, count):
    for i in range(count):
        _, reply = client.ask(f'Turn {i}: tell me about robots.')
        assert client.history_texts()[-1] == ('bot', 'text', reply)


def test_wrap_tokens_that_can_never_wrap_is_refused_when_set(node):
    process, client = node
    result, = client.set_params(wrap_tokens=100000)  # inside its declared range
    assert not result.successful
    assert 'wrap_tokens=100000 cannot be kept when the chat wraps' in result.reason, result.reason
    assert client.get_param('wrap_tokens') == 0
    _turns(client, 8)  # the chat overflows and wraps; no prompt is refused
    assert not grep(process, 'prompt rejected')
    assert client.set_params(wrap_tokens=100)[0].successful
    try:
        _turns(client, 4)
        assert not grep(process, 'prompt rejected')
    finally:
        assert client.set_params(wrap_tokens=0)[0].successful


def test_system_prompt_that_leaves_no_room_is_refused_when_set(node):
    process, client = node
    before = client.history_texts()
    result, = client.set_params(system_prompt='You are a robot. ' * 400)
    assert not result.successful
    assert 'system_prompt takes' in result.reason and 'too little room' in result.reason
    assert client.history_texts() == before  # refused: the chat was not reset
    assert client.set_params(system_prompt='You are a small robot.')[0].successful
    try:
        _turns(client, 3)
    finally:
        assert client.set_params(system_prompt='')[0].successful


def test_reply_prefix_longer_than_the_reply_room_is_refused(node):
    process, client = node
    result, = client.set_params(reply_prefix='go ' * 1500)
    assert not result.successful
    assert 'reply_prefix takes' in result.reason and 'kept for the reply' in result.reason
    assert client.get_param('reply_prefix') == ''
    _turns(client, 2)
    history = client.history()
    assert history.cache_tokens < CONTEXT


def test_configure_with_a_system_prompt_that_cannot_fit_fails_with_the_reason(node):
    process, client = node
    assert client.transition('deactivate') and client.transition('cleanup')
    start = len(process.log())
    try:
        assert client.set_params(system_prompt='You are a robot. ' * 400)[0].successful
        assert client.transition('configure') is False
        process.wait_for_log(r'configure failed: ValueError: system_prompt takes \d+ tokens',
                             start=start)
    finally:
        assert client.set_params(system_prompt='')[0].successful
        assert client.transition('configure') and client.transition('activate')
        client.wait_connected()


def _dump(client):
    # what `ros2 param dump` writes: ListParameters, then GetParameters, each value as
    # ros2param.api.get_value gives it (NOT_SET: None, arrays: lists), in one YAML document
    if 'list_parameters' not in client.clients:
        client.clients['list_parameters'] = client.node.create_client(
            ListParameters, f'{client.target}/list_parameters')
    names = sorted(client.call('list_parameters').result.names)
    request = client.clients['get_parameters'].srv_type.Request(names=names)
    values = client.call('get_parameters', request).values
    params = {name: parameter_value_to_python(value) for name, value in zip(names, values)}
    params = {name: list(v) if isinstance(v, (tuple, array.array)) else v
              for name, v in params.items()}
    types = {name: value.type for name, value in zip(names, values)}
    return {client.target: {'ros__parameters': params}}, types


def test_a_parameter_dump_restarts_the_node_with_the_same_settings(tiny_model_dir, tmp_path):
    # the nodes here have names of their own: the module's `live` node (/nano_llm) is still
    # up, and a client of a shared name gets answers from either node
    # issue 21 item 3: the shipped `builtin_functions: []` was dumped as null, and the node
    # then refused to start from the dump ("builtin_functions must be a list ... 'null'")
    shipped = yaml.safe_load((REPO_ROOT / 'config' / 'nano_llm.yaml').read_text())
    assert shipped['/**']['ros__parameters']['builtin_functions'] == []
    first_file = tmp_path / 'params.yaml'
    first_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        **shipped['/**']['ros__parameters'], 'model': tiny_model_dir('llama'), 'api': 'hf',
        'autostart': False}}}))
    dumps = []
    params_file = first_file
    for run in range(2):
        (tmp_path / str(run)).mkdir()
        process, client = start_node(tmp_path / str(run), {}, activate=False,
                                     name='dumped', params_file=params_file)
        try:
            dump, types = _dump(client)
        finally:
            stop_node(process, client)
        assert types['builtin_functions'] == ParameterType.PARAMETER_STRING_ARRAY
        assert dump[client.target]['ros__parameters']['builtin_functions'] == []
        dumps.append(dump)
        params_file = tmp_path / f'dump{run}.yaml'
        params_file.write_text(yaml.dump(dump, default_flow_style=False))
    assert dumps[0] == dumps[1]


def test_an_old_dump_with_builtin_functions_null_loads(tiny_model_dir, tmp_path):
    old = tmp_path / 'old_dump.yaml'
    old.write_text(yaml.dump({'/old_dump': {'ros__parameters': {
        'model': tiny_model_dir('llama'), 'builtin_functions': None}}}))
    process, client = start_node(tmp_path, {}, activate=False, name='old_dump', params_file=old)
    try:
        assert client.get_param('builtin_functions') == []
        assert not grep(process, 'bad parameters')
    finally:
        stop_node(process, client)

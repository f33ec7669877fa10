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
Bad input tried on a live nano_llm node: each gets a log line or an error response.

After each, the node is still up, its chat is exactly what it was (``~/get_history``), and
the next prompt is answered. One node process (tiny random Llama) serves the module.
"""

from node_harness import grep, start_node, stop_node
import pytest
from rcl_interfaces.msg import ParameterType, ParameterValue

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope='module')
def live(tiny_model_dir, tmp_path_factory):
    """Start one node for the module with one finished turn in its chat."""
    process, client = start_node(tmp_path_factory.mktemp('node_bad_input'),
                                 {'model': tiny_model_dir('llama')})
    try:
        client.ask('A first, normal turn.')
        yield process, client
    finally:
        stop_node(process, client)


@pytest.fixture
def node(live):
    """Return (process, client, chat before the test, log offset); check it survived after."""
    process, client = live
    before = client.history_texts()
    cache = client.history().cache_tokens
    yield process, client, before, len(process.log())
    assert process.alive, process.log()[-3000:]
    assert client.state() == 'active'
    assert client.history_texts()[:len(before)] == before
    # the next prompt is still answered and joins the chat after what was there
    _, reply = client.ask('Still there?')
    assert client.history_texts() == before + [('user', 'text', 'Still there?'),
                                               ('bot', 'text', reply)]
    assert client.history().cache_tokens > cache
    assert client.call('reset').success
    client.ask('A first, normal turn.')


def _unchanged(client, before):
    client.settle()
    assert client.history_texts() == before


@pytest.mark.parametrize('text', ['', '   \n\t '])
def test_empty_prompt_is_logged_and_ignored(node, text):
    process, client, before, log_start = node
    mark = client.mark()
    client.publish(text)
    process.wait_for_log('empty prompt ignored', start=log_start)
    assert client.no_new_turn(mark['turn'], 0.3)
    _unchanged(client, before)


def test_100kb_prompt_is_rejected_with_the_reason(node):
    process, client, before, log_start = node
    mark = client.mark()
    prompt = 'robot ' * 17000  # 102 kB
    assert len(prompt) > 100_000
    client.publish(prompt)
    match = process.wait_for_log(r'prompt rejected, chat unchanged: message of \d+ tokens is '
                                 r'longer than the chat allows \(\d+\); shorten it',
                                 start=log_start)
    assert match
    assert client.no_new_turn(mark['turn'], 0.3)
    _unchanged(client, before)


@pytest.mark.parametrize('name,value,type_name', [
    ('max_new_tokens', ParameterValue(type=ParameterType.PARAMETER_STRING,
                                      string_value='many'), 'string'),
    ('temperature', ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=1),
     'integer'),
    ('busy_policy', ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=True), 'bool'),
    ('do_sample', ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.5),
     'double'),
])
def test_parameter_of_the_wrong_type_is_refused(node, name, value, type_name):
    process, client, before, log_start = node
    old = client.get_param(name)
    result = client.set_raw_param(name, value)
    assert not result.successful
    assert 'type' in result.reason.lower(), result.reason
    assert client.get_param(name) == old
    _unchanged(client, before)


@pytest.mark.parametrize('values,reason', [
    ({'top_p': 1.5}, 'range'),
    ({'max_new_tokens': 0}, 'range'),
    ({'busy_policy': 'sometimes'}, 'busy_policy must be one of queue, interrupt, drop'),
    ({'autostart': True}, 'read-only'),
])
def test_parameter_out_of_range_or_invalid_is_refused(node, values, reason):
    process, client, before, log_start = node
    results = client.set_params(**values)
    assert not all(r.successful for r in results)
    reasons = ' '.join(r.reason for r in results)
    assert reason in reasons or reason in reasons.lower(), reasons
    for name in values:
        assert client.get_param(name) != values[name]
    _unchanged(client, before)


def test_temperature_zero_is_refused_while_sampling(node):
    process, client, before, log_start = node
    assert client.set_params(do_sample=True)[0].successful
    try:
        result, = client.set_params(temperature=0.0)
        assert not result.successful
        assert 'temperature must be > 0 when do_sample is true' in result.reason
        assert client.get_param('temperature') == 0.7
        process.wait_for_log('parameter change refused: temperature must be > 0',
                             start=log_start)
    finally:
        assert client.set_params(do_sample=False)[0].successful
    _unchanged(client, before)


@pytest.mark.parametrize('transition', ['configure', 'cleanup', 'activate',
                                        'inactive_shutdown', 'unconfigured_shutdown'])
def test_transition_in_the_wrong_order_fails_and_the_node_stays_active(node, transition):
    process, client, before, log_start = node
    assert client.transition(transition) is False
    process.wait_for_log(r'Unable to start transition \d+ from current state .*active',
                         start=log_start)
    assert client.state() == 'active'
    _unchanged(client, before)


def test_unknown_transition_label_fails(node):
    process, client, before, log_start = node
    request = client.clients['change_state'].srv_type.Request()
    request.transition.label = 'explode'
    assert client.call('change_state', request).success is False
    assert client.state() == 'active'
    _unchanged(client, before)


def test_function_call_without_functions_says_how_to_enable_them(node):
    process, client, before, log_start = node
    from ros2_nano_llm.srv import CallFunction
    cli = client.node.create_client(CallFunction, f'{client.target}/call_function')
    client.clients['call_function'] = cli
    response = client.call('call_function', CallFunction.Request(name='TIME', args_json='{}'))
    assert response.success is False and 'functions_file' in response.result
    _unchanged(client, before)
    assert not grep(process, 'Traceback', log_start)

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
Argument limits (issue 19 item 2): constrained calls stay in range, nothing else gets through.

A ``FunctionRecord``'s ``limits`` (``minimum``/``maximum`` for numbers, ``enum`` for words)
are in its schema, so a constrained call (``tool_choice`` a name or ``'required'``, python
style and the template syntaxes) can only write values in range: checked here with real
forward passes of the tiny random hf model and the embedded SmolLM2 at temperature 4, whose
tokens are nearly random picks. A value out of range that the reply writes anyway (text the
grammar does not shape: a ``reply_prefix``), or that ``~/call_function`` or a ``~/generate``
goal brings, never reaches the function; the model reads the refusal. The node part runs over
real DDS against call_helpers.SafetyRobot, whose ``drive`` fills an int8 request field (the
bridge bounds it to [-128, 127]).
"""

import json

from call_helpers import safety_node, serve_robot  # noqa: F401 (a fixture)
import pytest
from ros2_nano_llm import ChatHistory, FunctionRegistry
from ros2_nano_llm.functions.record import FunctionRecord

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MOVED = []
LOW, HIGH, MODES = -0.5, 0.5, ('slow', 'fast')


def _drive(speed: float, mode: str = 'slow') -> str:
    MOVED.append((speed, mode))
    return f'driving at {speed} ({mode})'


DRIVE = FunctionRecord.create(_drive, name='LIM_DRIVE', docs='Drive at a speed.',
                              arg_docs={'speed': 'metres per second'},
                              limits={'speed': {'minimum': LOW, 'maximum': HIGH},
                                      'mode': {'enum': list(MODES)}})


@pytest.fixture
def model(random_picks):
    """Yield each logits backend with the sampling that makes its tokens random picks."""
    return random_picks


def test_the_docs_the_model_reads_state_the_ranges():
    registry = FunctionRegistry([DRIVE])
    assert DRIVE.doc_line() == ("LIM_DRIVE(speed: float, mode: str = 'slow') - Drive at a "
                                'speed. (speed: metres per second, from -0.5 to 0.5; mode: one '
                                "of 'slow', 'fast')")
    assert DRIVE.doc_line() in registry.generate_docs()
    params = registry.tool_schemas()[0]['function']['parameters']['properties']
    assert params['speed']['minimum'] == LOW and params['speed']['maximum'] == HIGH
    assert params['mode']['enum'] == list(MODES)
    assert json.dumps(params['speed']) in registry.generate_docs(spec='json')


@pytest.mark.parametrize('choice', ['LIM_DRIVE', 'required'])
@pytest.mark.parametrize('template', ['chat-ml', 'chat-ml-tools', 'llama-3.1'])
def test_constrained_calls_only_write_values_in_range(model, template, choice):
    model, sampling = model
    registry = FunctionRegistry([DRIVE])
    history = ChatHistory(model, chat_template=template, tools=list(registry))
    history.append('user', 'Drive as fast as you can, 100 metres per second!')
    new, _ = history.embed_chat()
    for seed in range(3):
        MOVED.clear()
        out = model.generate(new, kv_cache=model.new_cache(), functions=registry,
                             template=history.template, tool_choice=choice,
                             stop_tokens=history.stop_tokens, max_new_tokens=64, seed=seed,
                             max_calls=1, **sampling)
        text = out.wait()
        first = out.calls[0] if out.calls else None
        assert first is not None and first.success and first.ran, (text, out.calls)
        speed, mode = first.args['speed'], first.args.get('mode', 'slow')
        assert LOW <= speed <= HIGH and mode in MODES, text
        assert MOVED == [(speed, mode)]


@pytest.mark.parametrize('prefix, reason', [
    ('LIM_DRIVE(speed=500.0)', "argument 'speed' must be at most 0.5, got 500.0"),
    ('LIM_DRIVE(speed=-3)', "argument 'speed' must be at least -0.5, got -3.0"),
    ('LIM_DRIVE(speed=0.1, mode="warp")', "argument 'mode' must be one of ['slow', 'fast']"),
    ('<tool_call>{"name": "LIM_DRIVE", "arguments": {"speed": 9}}</tool_call>',
     "argument 'speed' must be at most 0.5, got 9.0"),
])
def test_an_out_of_range_call_in_the_text_never_reaches_the_function(tiny_llama, prefix,
                                                                     reason):
    MOVED.clear()
    out = tiny_llama.generate('Hi', functions=FunctionRegistry([DRIVE]), reply_prefix=prefix,
                              max_new_tokens=4, template='chat-ml-tools')
    text = out.wait()
    assert MOVED == []
    refusal = out.calls[0]
    assert not refusal.ran and not refusal.success and reason in refusal.result
    assert refusal.result in text  # the model read why


# ---- over DDS ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def node(robot, tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama with the safety robot's actions."""
    with safety_node(tmp_path_factory, tiny_model_dir, 'nano_llm_limits',
                     max_new_tokens=24) as node:
        yield node


def test_call_function_out_of_range_never_reaches_the_robot(node, robot):
    process, client, watch = node
    robot_mark, (calls_mark, _) = robot.count(), watch.mark()
    for value in (500, -129):
        response = watch.call_function('drive', json.dumps({'speed': value}))
        assert not response.success and response.result.startswith(
            "error: bad arguments for 'drive': argument 'speed' must be "), response.result
    assert [m.event for m in watch.entries(calls_mark)] == ['refused', 'refused']
    assert robot.names(robot_mark) == []
    response = watch.call_function('drive', '{"speed": 127}')
    assert response.success and 'driving at 127' in response.result
    assert [r.int8_value for _, _, r in robot.since(robot_mark)] == [127]


def test_goal_calls_stay_in_range_and_out_of_range_ones_never_reach_the_robot(node, robot):
    process, client, watch = node
    # constrained: the goal's tool_choice names the function; every value written is in range
    robot_mark = robot.count()
    for _ in range(2):
        _, result = watch.goal_result(watch.send_goal('Drive at 1000!', tool_choice='drive'))
        assert [c.name for c in result.calls][:1] == ['drive']
    values = [r.int8_value for _, a, r in robot.since(robot_mark) if a == 'drive']
    assert values and all(-128 <= v <= 127 for v in values)
    # a call the grammar does not shape (the reply_prefix): refused, the model reads why
    assert client.set_params(reply_prefix='drive(speed=1000)')[0].successful
    try:
        robot_mark, (calls_mark, _) = robot.count(), watch.mark()
        _, result = watch.goal_result(watch.send_goal('Drive.', tool_choice='none'))
        assert robot.names(robot_mark) == [] and result.calls == []
        assert result.reply.startswith('drive(speed=1000)')  # 'none': no call runs at all
        _, result = watch.goal_result(watch.send_goal('Drive.', max_new_tokens=1))
        refused = watch.wait_entry(calls_mark, 'refused', 'drive')[1]
        assert "argument 'speed' must be at most 127, got 1000" in refused.result
        assert result.reply.startswith(f'drive(speed=1000) -> {refused.result}')
        assert robot.names(robot_mark) == [] and result.calls == []
    finally:
        assert client.set_params(reply_prefix='')[0].successful

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
Function calls detected in the streaming reply run, their results join the chat, cache exact.

A tiny random model cannot choose to call a function, so the reply is steered with
``reply_prefix`` (text the reply starts with, run through the same detection as model output).
"""

import json

from chat_helpers import assert_cache_exact, recompute, reply
from ros2_nano_llm import bot_function, BotFunctions, ChatHistory, FunctionRegistry

CALLS = []


@bot_function
def ROBOT_SPEED(speed: float) -> str:
    """Set the robot's speed in m/s."""
    CALLS.append(speed)
    return f'speed set to {speed}'


def test_python_style_call_runs_inline_and_cache_stays_exact(tiny_llama):
    CALLS.clear()
    functions = [BotFunctions.find('ROBOT_SPEED')]
    history = ChatHistory(tiny_llama, tools=functions)
    assert 'ROBOT_SPEED(speed: float)' in history[0].content  # docs in the system prompt
    history.append('user', 'Go slowly.')
    new, _ = history.embed_chat()
    out = tiny_llama.generate(new, kv_cache=history.kv_cache, functions=functions,
                              reply_prefix='Okay. ROBOT_SPEED(0.5)', max_new_tokens=8,
                              stop_tokens=history.stop_tokens)
    text = ''.join(out)
    assert text.startswith('Okay. ROBOT_SPEED(0.5) -> speed set to 0.5')
    assert CALLS == [0.5] and len(out.calls) == 1
    history.append('bot', out)
    assert len(history) == 3  # inline: one bot entry
    history.append('user', 'Thanks.')
    expected = recompute(tiny_llama, history)
    assert reply(tiny_llama, history) == expected
    assert_cache_exact(tiny_llama, history)


def test_template_call_becomes_tool_response_turn(tiny_llama):
    CALLS.clear()
    functions = [BotFunctions.find('ROBOT_SPEED')]
    history = ChatHistory(tiny_llama, chat_template='chat-ml-tools', tools=functions)
    history.append('user', 'Go fast.')
    new, _ = history.embed_chat()
    call = '<tool_call>{"name": "ROBOT_SPEED", "arguments": {"speed": 2}}</tool_call>'
    out = tiny_llama.generate(new, kv_cache=history.kv_cache, functions=functions,
                              template=history.template, reply_prefix=call, max_new_tokens=6,
                              stop_tokens=history.stop_tokens)
    out.wait()
    assert CALLS == [2.0]
    history.append('bot', out)
    roles = [m.role for m in history]
    assert roles == ['system', 'user', 'bot', 'tool_response', 'bot']
    assert history[2].content == call
    expected_result = {'name': 'ROBOT_SPEED', 'content': 'speed set to 2.0'}
    assert json.loads(history[3].content) == expected_result
    # the split entries render to exactly the tokens the cache holds
    assert_cache_exact(tiny_llama, history)
    history.append('user', 'And now?')
    expected = recompute(tiny_llama, history)
    assert reply(tiny_llama, history) == expected


def test_bad_calls_give_the_model_an_error_text(tiny_llama):
    functions = [BotFunctions.find('ROBOT_SPEED')]
    for prefix, error in [('ROBOT_SPEED("fast", 3)', 'bad arguments'),
                          ('ROBOT_SPEED(__import__("os").system("true"))', 'error'),
                          ('<tool_call>{"name": "FLY", "arguments": {}}</tool_call>',
                           "unknown function 'FLY'"),
                          ('<tool_call>{"name": </tool_call>', 'error')]:
        out = tiny_llama.generate('Hi', functions=functions, reply_prefix=prefix,
                                  max_new_tokens=3)
        out.wait()
        assert out.calls and error in out.calls[0].result, (prefix, out.calls[0].result)
        assert out.error is None


def test_run_tools_appends_results(tiny_llama):
    history = ChatHistory(tiny_llama, chat_template='chat-ml-tools')
    history.append('user', 'What date is it?')
    results = history.run_tools('Let me check: DATE()', tools=[BotFunctions.find('DATE')])
    assert len(results) == 1 and history[-1].role == 'tool_response'
    assert history[-1].content == results[0]


def test_a_reply_that_keeps_calling_stops_at_the_budget(tiny_llama):
    CALLS.clear()
    functions = [BotFunctions.find('ROBOT_SPEED')]
    prefix = 'ROBOT_SPEED(1) ROBOT_SPEED(2) ROBOT_SPEED(3) ROBOT_SPEED(4)'
    out = tiny_llama.generate('Hi', functions=functions, reply_prefix=prefix, max_new_tokens=3,
                              max_calls=2)
    text = out.wait()
    assert CALLS == [1.0, 2.0]  # the calls past the budget never reached the function
    assert [c.success for c in out.calls] == [True, True, False, False]
    refusal = out.calls[2].result
    assert refusal.startswith('error: not run') and '2 function calls' in refusal
    assert text.count(f' -> {refusal}') == 2  # and the model read why
    # the library default is no limit (NanoLLM's behaviour)
    CALLS.clear()
    tiny_llama.generate('Hi', functions=functions, reply_prefix=prefix, max_new_tokens=3).wait()
    assert CALLS == [1.0, 2.0, 3.0, 4.0]


def test_drive_forward_a_little_makes_one_call(smollm2_llama_cpp):
    # issue 19: after the required call SmolLM2 went on writing "You can use the
    # `move_forward()`" and every mention ran the robot (8 to 12 calls per reply)
    robot = []
    registry = FunctionRegistry()
    registry.register(lambda: robot.append('move_forward') or 'success: true, message: ""',
                      name='move_forward', docs='Drive straight ahead one step (half a metre).')
    registry.register(lambda: robot.append('stop') or 'success: true, message: ""',
                      name='stop', docs='Stop all motion at once.')

    def set_headlights(on: bool) -> str:
        robot.append('set_headlights')
        return 'success: true, message: ""'

    registry.register(set_headlights, docs='Turn the headlights on or off.')
    # the README's two ways: tool_choice:=required, and reply_prefix:='move_forward()'
    for steer in ({'tool_choice': 'required'}, {'reply_prefix': 'move_forward()'}):
        robot.clear()
        history = ChatHistory(smollm2_llama_cpp, tools=list(registry))
        history.append('user', 'Drive forward a little.')
        new, _ = history.embed_chat()
        out = smollm2_llama_cpp.generate(new, kv_cache=history.kv_cache, functions=registry,
                                         max_new_tokens=256, stop_tokens=history.stop_tokens,
                                         **steer)
        text = out.wait()
        assert robot == ['move_forward'], (steer, text)
        assert [c.name for c in out.calls] == ['move_forward']


def test_a_required_call_is_the_replys_one_call(smollm2_llama_cpp):
    # issue 19: after a required call's result SmolLM2 chained calls nobody asked for
    # ("Halt right now." -> stop(), go_to(...), go_to_pose(...), set_gripper(...)); the
    # forced call is the reply's one call, and what follows it cannot open another
    robot = []
    registry = FunctionRegistry()

    def stop() -> str:
        robot.append('stop')
        return 'stopped'

    def go_to(place: str) -> str:
        robot.append('go_to')
        return f'arrived at the {place}'

    def get_position() -> str:
        robot.append('get_position')
        return 'x 1.00 m, y 0.50 m, heading 0 degrees (0.1 s ago)'

    def set_gripper(open: bool) -> str:  # noqa: A002 - the argument name the model reads
        robot.append('set_gripper')
        return f"gripper {'open' if open else 'closed'}"

    for func, docs in ((stop, 'Stop all motion now.'), (go_to, 'Navigate to a named place.'),
                       (get_position, 'Read the odometry: where the robot is.'),
                       (set_gripper, 'Open (True) or close (False) the gripper.')):
        registry.register(func, docs=docs)
    for request, choice in (('Halt right now.', 'stop'), ('Where are you?', 'required')):
        robot.clear()
        history = ChatHistory(smollm2_llama_cpp, tools=list(registry), system_prompt=(
            'You are the assistant of a small robot. You control it by calling functions.'))
        history.append('user', request)
        new, _ = history.embed_chat()
        out = smollm2_llama_cpp.generate(new, kv_cache=history.kv_cache, functions=registry,
                                         tool_choice=choice, max_new_tokens=48,
                                         stop_tokens=history.stop_tokens)
        text = out.wait()
        assert len(robot) == 1 and len(out.calls) == 1, (request, robot, text)
        assert out.calls[0].success
        after = text.split(out.calls[0].result, 1)[1]
        names = ('stop', 'go_to', 'get_position', 'set_gripper')
        assert not any(f'{name}(' in after for name in names), text


def test_a_required_reply_runs_no_second_call(tiny_llama):
    # calls in the reply's own text past its required one are refused, not run, and the
    # model reads why (the prefix is outside the grammar: it writes keywords)
    CALLS.clear()
    out = tiny_llama.generate('Hi', functions=[BotFunctions.find('ROBOT_SPEED')],
                              tool_choice='ROBOT_SPEED', max_new_tokens=12,
                              reply_prefix='ROBOT_SPEED(1) ROBOT_SPEED(2)')
    text = out.wait()
    assert CALLS == [1.0], text
    assert [c.success for c in out.calls][:2] == [True, False]
    assert all(not c.success for c in out.calls[1:])
    refusal = out.calls[1].result
    assert refusal == 'error: not run: this reply was to make one call, and made it'
    assert f' -> {refusal}' in text

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
"""Tests of call detection in streamed model output, safe parsing and execution."""

import json
import random
import time

import pytest

from ros2_nano_llm.chat.templates import get_template
from ros2_nano_llm.functions import (BotFunction, CallDetector, execute, find_calls,
                                     format_result, parse_json_call, ToolCall)
from ros2_nano_llm.functions import parsing
from ros2_nano_llm.functions.registry import bot_function, BotFunctions


def _echo(text: str):
    return f'echo: {text}'


def _add(a: int, b: int = 0):
    return a + b


def _move(distance: float, speed: float = 0.5):
    return f'moved {distance} m at {speed} m/s'


def _lights(on: bool):
    return {'lights': on}


def _boom():
    raise RuntimeError('sensor offline')


def _slow():
    time.sleep(5)


def _nothing():
    return None


FUNCS = [BotFunction(name=f.__name__.lstrip('_'), func=f, docs='test')
         for f in (_echo, _add, _move, _lights, _boom, _slow, _nothing)]
FUNCS.append(BotFunction(name='DATE', func=lambda: 'Monday', docs='Returns the date.'))


def feed_every_prefix(text, style='auto'):
    """Feed each prefix of ``text``; return (prefix length, call) for each report."""
    detector = CallDetector(FUNCS, style)
    reports = []
    for n in range(len(text) + 1):
        reports.extend((n, call) for call in detector.feed(text[:n]))
    reports.extend((len(text), call) for call in detector.feed(text, final=True))
    return reports


def summary(calls):
    return [(c.name, c.args, c.kwargs, c.style, c.error is None) for c in calls]


STREAM_CASES = [
    # (model output, expected [(name, args, kwargs, style, ok)])
    ('The date is DATE().', [('DATE', [], {}, 'python', True)]),
    ("Let me echo(')') now", [('echo', [')'], {}, 'python', True)]),
    ('echo("a (nested) (paren")', [('echo', ['a (nested) (paren'], {}, 'python', True)]),
    ("echo('it\\'s )')", [('echo', ["it's )"], {}, 'python', True)]),
    ('echo("""tri)ple""")', [('echo', ['tri)ple'], {}, 'python', True)]),
    ('add((1), 2) then add(a=3, b=4)', [('add', [1, 2], {}, 'python', True),
                                        ('add', [], {'a': 3, 'b': 4}, 'python', True)]),
    ('move(distance=1.5, speed=0.2)', [('move', [], {'distance': 1.5, 'speed': 0.2},
                                        'python', True)]),
    ('echo([1, (2, 3), {"k": ")"}])', [('echo', [[1, (2, 3), {'k': ')'}]], {}, 'python',
                                        True)]),
    ('DATE() and DATE() again', [('DATE', [], {}, 'python', True),
                                 ('DATE', [], {}, 'python', True)]),
    ('print(x) myecho(1) obj.echo(2) ECHO(3) echo (4)', []),
    ('<tool_call>\n{"name": "lights", "arguments": {"on": true}}\n</tool_call>',
     [('lights', [], {'on': True}, 'template', True)]),
    ('<tool_call>{"name": "add", "arguments": "{\\"a\\": 2}"}</tool_call>',
     [('add', [], {'a': 2}, 'template', True)]),
    ('<tool_call>{"name": "FOO", "arguments": {}}</tool_call>',
     [('FOO', [], {}, 'template', True)]),
    ('<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>',
     [('add', [], {}, 'template', False)]),
    ('<tool_call>{"name": "echo", "arguments": {"text": "DATE() )"}}</tool_call> DATE()',
     [('echo', [], {'text': 'DATE() )'}, 'template', True),
      ('DATE', [], {}, 'python', True)]),
    ('<|python_tag|>{"name": "move", "parameters": {"distance": 2}}<|eom_id|>',
     [('move', [], {'distance': 2}, 'template', True)]),
    ('<|python_tag|>brave_search.call(query="ros (2)")<|eom_id|>',
     [('brave_search.call', [], {'query': 'ros (2)'}, 'template', True)]),
    ('echo(text=open("x"))', [('echo', [], {}, 'python', False)]),
    ('echo(*["a"])', [('echo', [], {}, 'python', False)]),
]


@pytest.mark.parametrize('text,expected', STREAM_CASES)
def test_every_prefix_reports_each_call_once_when_complete(text, expected):
    reports = feed_every_prefix(text)
    assert summary([c for _, c in reports]) == expected
    for n, call in reports:
        assert call.span[1] == n, 'reported as soon as it became complete, not later'
        assert text[call.span[0]:call.span[1]] == call.raw
    assert summary(find_calls(text, FUNCS)) == expected


@pytest.mark.parametrize('seed', range(5))
def test_random_chunking_matches_whole_text(seed):
    rng = random.Random(seed)
    text = ' '.join(t for t, _ in STREAM_CASES)
    expected = summary(find_calls(text, FUNCS))
    assert len(expected) >= 20
    detector = CallDetector(FUNCS)
    got, n = [], 0
    while n < len(text):
        n = min(len(text), n + rng.randint(1, 12))
        got.extend(detector.feed(text[:n]))
    got.extend(detector.feed(text, final=True))
    assert summary(got) == expected


SOUP = list('()[]{}"\'\\\n ,:=.*ab1') + [
    'echo', 'DATE', 'add', '<tool_call>', '</tool_call>', '<|python_tag|>', '<|eom_id|>',
    'true', '"name"']


def test_streaming_equals_whole_text_on_random_soup():
    """Any text, fed one character at a time, gives exactly the whole-text calls."""
    def key(call):
        return (call.name, call.args, call.kwargs, call.style, call.error, call.span)

    for seed in range(300):
        rng = random.Random(seed)
        text = ''.join(rng.choice(SOUP) for _ in range(rng.randint(1, 30)))
        whole = [key(c) for c in find_calls(text, FUNCS)]
        streamed = [key(c) for _, c in feed_every_prefix(text)]
        assert streamed == whole, text
        for call in find_calls(text, FUNCS):
            if call.name != 'slow':
                result, expected = execute(call, FUNCS, timeout=1.0), _expected_result(call)
                # errors: the reason's start (their details are free text)
                assert result.startswith(expected) if expected.startswith('error: ') \
                    else result == expected, (text, result, expected)


def _expected_result(call):
    """Return what running ``call`` must give: the function's own result, or why not."""
    if call.error:
        return f'error: {call.error}'
    func = BotFunctions.find(call.name, BotFunctions.records(FUNCS))
    if func is None:
        return 'error: unknown function'
    try:
        bound = func.bind(call.args, call.kwargs)
    except TypeError:
        return f'error: bad arguments for {func.name!r}'
    return parsing.result_to_text(func.func(*bound.args, **bound.kwargs),
                                  parsing.MAX_RESULT_CHARS)


def test_styles_restrict_detection():
    text = 'DATE() <tool_call>{"name": "DATE", "arguments": {}}</tool_call>'
    assert [c.style for c in find_calls(text, FUNCS, style='python')] == ['python']
    assert [c.style for c in find_calls(text, FUNCS, style='template')] == ['template']
    with pytest.raises(ValueError, match='unknown call style'):
        CallDetector(FUNCS, style='xml')


def test_final_reports_calls_left_open():
    detector = CallDetector(FUNCS)
    # chat-ml-tools stops at </tool_call>, so the reply may end without it
    text = '<tool_call>{"name": "add", "arguments": {"a": 4}}'
    assert detector.feed(text) == []
    [call] = detector.feed(text, final=True)
    assert (call.name, call.kwargs, call.error) == ('add', {'a': 4}, None)
    # an unclosed python call at the end is an error the model hears about
    [call] = find_calls('ok echo("never closed', FUNCS)
    assert call.name == 'echo' and 'never closed' in call.error
    # llama-3.1 code after <|python_tag|> ends at the end of the text
    [call] = find_calls('<|python_tag|>DATE()', FUNCS)
    assert (call.name, call.error) == ('DATE', None)


def test_broken_call_is_reported_and_detection_goes_on():
    text = 'echo("abc\nmore) text add(1, 2)'
    calls = [c for _, c in feed_every_prefix(text)]
    assert summary(calls) == [('echo', [], {}, 'python', False),
                              ('add', [1, 2], {}, 'python', True)]
    assert 'unbalanced' in calls[0].error


def test_runaway_call_is_dropped_after_the_limit():
    text = 'echo(' + 'x' * (parsing.MAX_CALL_CHARS + 10) + ' DATE()'
    detector = CallDetector(FUNCS)
    calls = detector.feed(text)
    assert [c.name for c in calls] == ['echo', 'DATE']
    assert 'never closed' in calls[0].error and calls[1].error is None


def test_skip_ignores_injected_text():
    detector = CallDetector(FUNCS)
    text = 'Now DATE()'
    [call] = detector.feed(text)
    text += format_result(call, 'see DATE() and echo("x")', None)
    detector.skip(len(text))
    text += ' done echo("y")'
    assert [c.args for c in detector.feed(text)] == [['y']]


def test_a_new_text_restarts_detection():
    detector = CallDetector(FUNCS)
    assert len(detector.feed('DATE() one')) == 1
    assert len(detector.feed('other DATE()')) == 1


def test_no_eval_of_model_output(tmp_path):
    marker = tmp_path / 'pwned'
    payload = f"__import__('os').system('touch {marker}')"
    texts = [
        f'echo({payload})',
        f'echo(text={payload})',
        f'<|python_tag|>{payload}<|eom_id|>',
        f'<tool_call>{{"name": "{payload}", "arguments": {{}}}}</tool_call>',
        f'<tool_call>{{"name": "echo", "arguments": {payload}}}</tool_call>',
        payload,
    ]
    results = []
    for text in texts:
        for call in find_calls(text, FUNCS):
            results.append(execute(call, FUNCS))
    assert len(results) == 5          # the bare payload names no known function
    assert all(r.startswith('error: ') for r in results), results
    assert not marker.exists()


def test_execute_results_and_errors():
    def run(text):
        [call] = find_calls(text, FUNCS)
        return execute(call, FUNCS)

    assert run('add(2, b=3)') == '5'
    assert run('move(1)') == 'moved 1.0 m at 0.5 m/s'
    assert run('lights(True)') == '{"lights": true}'
    assert run('nothing()') == 'done'
    assert run('<tool_call>{"name": "FOO", "arguments": {}}</tool_call>') == (
        "error: unknown function 'FOO'; available: echo, add, move, lights, boom, slow, "
        'nothing, DATE')
    missing = run('move()')
    assert missing.startswith("error: bad arguments for 'move': missing a required argument")
    assert 'expected arguments: distance: float, speed: float = 0.5' in missing
    assert run('add(1, c=2)').startswith("error: bad arguments for 'add': got an unexpected")
    assert run('move("far")').startswith(
        "error: bad arguments for 'move': argument 'distance' must be float")
    assert run('DATE(1)').startswith("error: bad arguments for 'DATE'")
    assert run('boom()') == "error: 'boom' failed: RuntimeError: sensor offline"
    assert run('<tool_call>{"name": "add", "arguments": [1]}</tool_call>') == (
        "error: the arguments of 'add' must be a JSON object")
    assert run('<tool_call>{"name": "add" "arguments": {}}</tool_call>').startswith(
        'error: malformed JSON in tool call: ')
    assert run('<tool_call>{"arguments": {}}</tool_call>') == (
        'error: the tool call has no "name"')


def test_execute_times_out_quickly():
    [call] = find_calls('slow()', FUNCS)
    start = time.monotonic()
    result = execute(call, FUNCS, timeout=0.2)
    assert result == "error: 'slow' failed: timed out after 0.2 s"
    assert time.monotonic() - start < 4.0  # _slow would take 5 s


def test_execute_never_raises_and_errors_are_short():
    call = ToolCall(name='echo', args=[object()], style='python')
    assert execute(call, FUNCS).startswith("error: bad arguments for 'echo'")
    long_name = ToolCall(name='x' * 5000, style='template')
    assert len(execute(long_name, FUNCS)) < 300
    big = BotFunction(name='big', func=lambda: 'y' * 10000)
    assert len(execute(ToolCall(name='big'), [big])) < parsing.MAX_RESULT_CHARS + 50


def test_parse_json_call_for_the_call_function_service():
    call = parse_json_call('move', '{"distance": 2.5}')
    assert (call.name, call.kwargs, call.error) == ('move', {'distance': 2.5}, None)
    assert execute(call, FUNCS) == 'moved 2.5 m at 0.5 m/s'
    assert execute(parse_json_call('DATE', ''), FUNCS) == 'Monday'
    assert execute(parse_json_call('move', '{distance: 1}'), FUNCS).startswith(
        'error: malformed JSON arguments')
    assert execute(parse_json_call('move', '[1]'), FUNCS).startswith(
        'error: arguments must be a JSON object')


def test_format_result():
    [py] = find_calls('DATE()', FUNCS)
    assert format_result(py, 'Monday', 'chat-ml-tools') == ' -> Monday'
    [tc] = find_calls('<tool_call>{"name": "DATE", "arguments": {}}</tool_call>', FUNCS)
    body = json.dumps({'name': 'DATE', 'content': 'Monday'})
    # the built-in chat-ml-tools template wraps tool responses in <tool_response> itself
    assert format_result(tc, 'Monday', 'chat-ml-tools') == body
    assert format_result(tc, 'Monday', get_template('chat-ml-tools')) == body
    tagged = {'user': '${MESSAGE}', 'bot': '${MESSAGE}',
              'tool_response': '<tool_response>\n${MESSAGE}\n</tool_response>'}
    assert format_result(tc, 'Monday', tagged) == body
    plain = {'user': '${MESSAGE}', 'bot': '${MESSAGE}', 'tool_response': '${MESSAGE}'}
    assert format_result(tc, 'Monday', plain) == 'Monday'
    assert format_result(tc, 'Monday', 'hermes') == (
        f'<tool_response>\n{body}\n</tool_response>')
    assert format_result(tc, 'Monday', 'llama-3.1') == 'Monday'
    assert format_result(tc, 'Monday', None) == 'Monday'


def test_definitions_are_not_calls():
    @bot_function(name='set_lamp')
    def _set_lamp(on: bool) -> str:
        """Switch the lamp."""
        return 'ok'
    try:
        text = 'Like this:\ndef set_lamp(on):\n    pass\nthen set_lamp(True)'
        calls = find_calls(text, [BotFunctions.find('set_lamp')])
        assert [c.raw for c in calls] == ['set_lamp(True)']
    finally:
        BotFunctions.unregister('set_lamp')


def test_json_arguments_are_bounded_in_depth_and_size():
    # issue 11 item 1: 1000 nested '[' made json.loads raise RecursionError, which escaped
    for depth in (1000, 5000):
        call = parse_json_call('TIME', '[' * depth + ']' * depth)
        assert call.error and 'nested deeper' in call.error
        assert execute(call, FUNCS).startswith('error: ')
        deep_obj = '{"a": ' * depth + '1' + '}' * depth
        assert 'nested deeper' in parse_json_call('TIME', deep_obj).error
    huge = '{"text": "' + 'x' * (parsing.MAX_JSON_CHARS + 1) + '"}'
    assert 'longer than' in parse_json_call('echo', huge).error
    # brackets inside strings do not count; ordinary arguments still work
    fine = parse_json_call('echo', json.dumps({'text': '[' * 500}))
    assert fine.error is None and execute(fine, FUNCS) == 'echo: ' + '[' * 500
    assert parse_json_call('move', '{"distance": [[[1]]]}').error is None
    # the same bound holds for tool calls found in model output
    text = '<tool_call>{"name": "echo", "arguments": ' + '[' * 3000 + '}</tool_call>'
    [call] = find_calls(text, FUNCS)
    assert call.error and 'nested deeper' in call.error
    inner = json.dumps('[' * 1000 + ']' * 1000)
    [call] = find_calls('<tool_call>{"name": "echo", "arguments": ' + inner + '}</tool_call>',
                        FUNCS)
    assert call.error and 'nested deeper' in call.error

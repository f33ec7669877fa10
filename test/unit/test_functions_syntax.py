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
"""Tests of the tool syntaxes: the prose rule, one syntax per template, incremental detection."""

import json
import subprocess
import sys
import threading
import time

from ros2_nano_llm.chat.reply import Reply
from ros2_nano_llm.chat.templates import BUILTIN_TEMPLATES, ChatTemplate, get_template
from ros2_nano_llm.functions import BotFunction, CallDetector, find_calls, format_result
from ros2_nano_llm.functions.calltext import parse_json_calls
from ros2_nano_llm.functions.runner import CallRunner
from ros2_nano_llm.functions.streaming import FunctionHook, IncrementalText
from ros2_nano_llm.functions.syntax import (CHAT_ML_TOOLS, HERMES, LLAMA_31, PYTHON,
                                            SYNTAXES, ToolSyntax)


def _move_forward():
    return 'moved'


def _set_headlights(on: bool):
    return f'lights {on}'


FUNCS = [BotFunction(name='move_forward', func=_move_forward),
         BotFunction(name='set_headlights', func=_set_headlights)]


def _names(text):
    return [c.name for c in find_calls(text, FUNCS)]


def test_a_function_name_in_prose_is_not_a_call():
    # the reply issue 19 saw: every mention ran the robot
    assert _names('You can use the `move_forward()` function.') == []
    assert _names('Call "move_forward()" to drive.') == []
    assert _names('Say \u201cmove_forward()\u201d to drive.') == []
    assert _names("Use 'move_forward()' or `set_headlights(on=True)`.") == []
    assert _names('Here is how:\n```python\ndef f():\n    move_forward()\n```\n') == []
    assert _names('```\nmove_forward()\n```\nmove_forward()') == ['move_forward']
    # an odd backtick on an earlier line does not leak into the next one
    assert _names('a ` stray tick\nmove_forward()') == ['move_forward']


def test_calls_outside_prose_still_run():
    # NanoLLM's inline calls in running text, and calls after a closed code span
    assert _names('move_forward()') == ['move_forward']
    assert _names('Okay, driving: move_forward() now.') == ['move_forward']
    assert _names('`x` then move_forward() and "y"') == ['move_forward']
    # the template's own syntax is never prose, backticks or not
    text = '`<tool_call>{"name": "move_forward", "arguments": {}}</tool_call>`'
    assert _names(text) == ['move_forward']


def test_streaming_in_pieces_finds_what_the_whole_text_does():
    text = ('Sure. `move_forward()` is it. move_forward() -> moved\n```\nmove_forward()\n'
            '```\n"set_headlights(on=True)" set_headlights(on=False) <tool_call>{"name": '
            '"move_forward", "arguments": {}}</tool_call>' + ' filler' * 300 + ' move_forward()')
    whole = [(c.name, c.span) for c in find_calls(text, FUNCS)]
    for size in (1, 3, 7, 50):
        detector = CallDetector(FUNCS)
        found = []
        for i in range(0, len(text), size):
            found += detector.push(text[i:i + size])
        found += detector.push('', final=True)
        assert [(c.name, c.span) for c in found] == whole
    assert [n for n, _ in whole] == ['move_forward', 'set_headlights', 'move_forward',
                                     'move_forward']


def test_each_template_names_its_syntax():
    assert get_template('chat-ml').tool_syntax is PYTHON
    assert get_template('chat-ml-tools').tool_syntax is CHAT_ML_TOOLS
    assert get_template('llama-3.1').tool_syntax is LLAMA_31
    assert get_template('llava-llama-2').tool_syntax is PYTHON
    # a template file written before tool_syntax: inferred from its own markup
    old = ChatTemplate({'user': '${MESSAGE}', 'bot': '${MESSAGE}',
                        'tool_call': '<tool_call>(.*?)</tool_call>'})
    assert old.tool_syntax is HERMES
    named = ChatTemplate({'user': '${MESSAGE}', 'bot': '${MESSAGE}', 'tool_syntax': 'hermes'})
    assert named.tool_syntax is HERMES and ChatTemplate(named.to_dict()) == named
    assert set(SYNTAXES) == {'python', 'hermes', 'chat-ml-tools', 'llama-3.1'}


class _BracketSyntax(ToolSyntax):
    """A made-up template syntax: ``[[CALL {"name": ..., "arguments": ...}]]``."""

    name = 'brackets'
    markers = ('[[CALL',)
    closers = (']]',)
    args_key = 'arguments'

    def complete(self, text, start, final):
        close = text.find(']]', start)
        if close < 0:
            return [], None
        end = close + 2
        return parse_json_calls(text[start + 6:close], text[start:end], (start, end)), end

    def format_result(self, call, result):
        return f'<<{call.name}: {result}>>'


class _CharModel:
    """A model whose tokens are characters: enough for the hook (no forward pass)."""

    def __init__(self):
        self.decoded = 0   # characters detokenize() has produced, all calls together
        self.backend = self

    def detokenize(self, tokens):
        self.decoded += len(tokens)
        return ''.join(chr(t) for t in tokens)

    def tokenize(self, text, special=False):
        return [ord(c) for c in text]


class _Stream:
    """The reply's tokens and its record (calls, stop flag), as the generation loop keeps them."""

    def __init__(self):
        self.tokens, self.record = [], Reply()
        self.calls = self.record.calls
        self.stopped = False


def _drive_hook(hook, model, text):
    stream = _Stream()
    for ch in text:
        stream.tokens.append(ord(ch))
        injected = hook(stream)
        if injected:
            stream.tokens += injected
    hook(stream, final=True)
    return stream, model.detokenize(stream.tokens)


def test_a_new_call_syntax_is_declared_by_its_template_alone():
    template = ChatTemplate({'user': '${MESSAGE}', 'bot': '${MESSAGE}|',
                             'tool_response': 'TOOL ${MESSAGE}\n',
                             'tool_syntax': _BracketSyntax()})
    model = _CharModel()
    hook = FunctionHook(model, FUNCS, template)
    assert hook.CALL_CLOSERS[-1] == ']]'
    stream, text = _drive_hook(hook, model, 'ok [[CALL {"name": "move_forward", '
                                            '"arguments": {}}]] done')
    [made] = stream.calls
    assert (made.name, made.result, made.turn) == ('move_forward', 'moved', True)
    assert made.content == '<<move_forward: moved>>'
    assert '|TOOL <<move_forward: moved>>\n' in text
    assert format_result(made.call, 'moved', template) == '<<move_forward: moved>>'


def test_the_hook_decodes_only_new_text():
    model = _CharModel()
    hook = FunctionHook(model, FUNCS, get_template('chat-ml'))
    reply = 'word ' * 2000 + 'move_forward()' + ' more' * 100
    stream, text = _drive_hook(hook, model, reply)
    assert [c.name for c in stream.calls] == ['move_forward']
    assert text.startswith(reply[:-500]) and 'move_forward() -> moved' in text
    # a decode of the whole reply per token would be ~n^2/2 = 60 million characters
    assert model.decoded < 10 * len(text)


def test_incremental_text_holds_a_split_character():
    pieces = []
    decode = IncrementalText(lambda ids: bytes(ids).decode('utf-8', errors='replace'))
    data = list('aé€b'.encode())
    for n in range(1, len(data) + 1):
        pieces.append(decode.new_text(data[:n]))
    assert ''.join(pieces) == 'aé€b' and '\ufffd' not in ''.join(pieces)


def test_the_call_budget_refuses_calls_past_it():
    model = _CharModel()
    ran = []
    funcs = [BotFunction(name='move_forward', func=lambda: ran.append(1) or 'moved')]
    hook = FunctionHook(model, funcs, get_template('chat-ml'), max_calls=2)
    stream, text = _drive_hook(hook, model, 'move_forward() ' * 4)
    assert len(ran) == 2 and len(stream.calls) == 4
    assert [c.success for c in stream.calls] == [True, True, False, False]
    refusal = stream.calls[2].result
    assert 'not run' in refusal and '2 function calls' in refusal
    assert text.count(' -> ' + refusal) == 2  # the model reads why


def test_a_timed_out_call_is_accounted_for_until_it_ends():
    release = threading.Event()
    runner = CallRunner()
    try:
        ok, text = runner.run(release.wait, (5.0,), {}, 0.1, name='slow_arm')
        assert (ok, text) == (False, 'timed out after 0.1 s')
        assert runner.running() == ['slow_arm']
        release.set()
        deadline = time.monotonic() + 5.0
        while runner.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.running() == []
    finally:
        runner.close()


def test_calls_stuck_past_their_timeout_bound_the_runner():
    # each overdue call holds a thread of the pool the runner shares (the node's): past
    # max_overdue of them no call starts, so the pool keeps threads for the chat
    release = threading.Event()
    started = []
    runner = CallRunner(max_overdue=2)
    try:
        for name in ('arm', 'base'):
            assert runner.run(release.wait, (5.0,), {}, 0.05, name=name)[0] is False
        ok, text = runner.run(lambda: started.append(1) or 'ran', (), {}, 1.0, name='lights')
        assert not ok and started == []
        assert text == '2 calls still run past their timeout (arm, base); no call starts ' \
            'until one ends'
        release.set()
        deadline = time.monotonic() + 5.0
        while runner.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.run(lambda: started.append(1) or 'ran', (), {}, 1.0) == (True, 'ran')
    finally:
        release.set()
        runner.close()


def test_format_result_follows_the_syntax():
    [tc] = find_calls('<tool_call>{"name": "move_forward", "arguments": {}}</tool_call>', FUNCS)
    body = json.dumps({'name': 'move_forward', 'content': 'moved'})
    assert format_result(tc, 'moved', HERMES) == f'<tool_response>\n{body}\n</tool_response>'
    assert format_result(tc, 'moved', CHAT_ML_TOOLS) == body
    assert format_result(tc, 'moved', LLAMA_31) == 'moved'


def test_functions_do_not_import_chat_and_templates_are_not_changed_at_import():
    code = ('import sys, ros2_nano_llm.functions, ros2_nano_llm.functions.streaming, '
            'ros2_nano_llm.constraints; '
            'print(sorted(m for m in sys.modules if m.startswith("ros2_nano_llm.chat")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'
    assert BUILTIN_TEMPLATES['llava-v1'] == BUILTIN_TEMPLATES['vicuna-v1']
    assert BUILTIN_TEMPLATES['llava-v1'] is not BUILTIN_TEMPLATES['vicuna-v1']

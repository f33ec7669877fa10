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
Grammar-constrained replies (tool_choice, response_format) on each logits backend.

The hf model is a tiny random-weight one and the llama_cpp model (the embedded SmolLM2)
samples at a high temperature: nearly every token is a random pick, so only the grammar
mask can make the replies valid.
"""

import json
import re

from chat_helpers import assert_cache_exact, assert_logits_exact, recompute, reply
import numpy as np
import pytest
from ros2_nano_llm import ChatHistory, FunctionRegistry
from ros2_nano_llm.constraints import Constraint
from ros2_nano_llm.functions.grammar import call_grammar, prose_grammar

CALLS = []


def _lights(on: bool) -> str:
    CALLS.append(('CT_LIGHTS', on))
    return f"lights {'on' if on else 'off'}"


def _drive(speed: int, gear: str = 'low') -> str:
    CALLS.append(('CT_DRIVE', speed, gear))
    return f'driving at {speed} in {gear}'


REGISTRY = FunctionRegistry()  # this module's functions, apart from the default registry
LIGHTS = REGISTRY.register(_lights, name='CT_LIGHTS', docs='Switch the lights.')
# a robot action's schema: an integer range (a service field's type) and a choice of words
DRIVE = REGISTRY.register(_drive, name='CT_DRIVE', docs='Drive.', schema={
    'type': 'object', 'required': ['speed'], 'properties': {
        'speed': {'type': 'integer', 'minimum': -5, 'maximum': 5},
        'gear': {'type': 'string', 'enum': ['low', 'high'], 'default': 'low'}}})
FUNCTIONS = [LIGHTS, DRIVE]
SCHEMA = {'type': 'object', 'additionalProperties': False, 'required': ['speed', 'on', 'gear'],
          'properties': {'speed': {'type': 'integer', 'minimum': 0, 'maximum': 100},
                         'on': {'type': 'boolean'}, 'gear': {'enum': ['low', 'high']}}}


@pytest.fixture
def model(random_picks):
    """Yield each logits backend with the sampling that makes its tokens random picks."""
    return random_picks


def _check_call(made, name=None):
    assert made.success, made.result
    assert made.name in ('CT_LIGHTS', 'CT_DRIVE') and (name is None or made.name == name)
    if made.name == 'CT_LIGHTS':
        assert set(made.args) == {'on'} and isinstance(made.args['on'], bool)
        assert CALLS[-1] == ('CT_LIGHTS', made.args['on'])
    else:
        speed, gear = made.args['speed'], made.args.get('gear', 'low')
        assert isinstance(speed, int) and -5 <= speed <= 5 and gear in ('low', 'high')
        assert CALLS[-1] == ('CT_DRIVE', speed, gear)


@pytest.mark.parametrize('template', ['chat-ml', 'chat-ml-tools', 'llama-3.1'])
def test_required_reply_is_always_a_valid_call(model, template):
    model, sampling = model
    history = ChatHistory(model, chat_template=template, tools=FUNCTIONS)
    history.append('user', 'Do something.')
    new, _ = history.embed_chat()
    opening = {'chat-ml': 'CT_', 'chat-ml-tools': '<tool_call>',
               'llama-3.1': '<|python_tag|>'}[template]
    for seed in range(3):
        CALLS.clear()
        # the template's stop strings as a chat passes them: chat-ml-tools stops at
        # '</tool_call>', which closes the call and must not end the reply before it runs
        out = model.generate(new, kv_cache=model.new_cache(), functions=FUNCTIONS,
                             template=history.template, tool_choice='required',
                             stop_tokens=history.stop_tokens, max_new_tokens=64, seed=seed,
                             **sampling)
        text = out.wait()
        assert text.startswith(opening), text
        assert len(out.calls) >= 1 and len(CALLS) == len(out.calls), (text, out.calls)
        _check_call(out.calls[0])


def test_a_named_function_is_the_one_called(model):
    model, sampling = model
    for seed in range(3):
        CALLS.clear()
        out = model.generate('Hi', functions=FUNCTIONS, tool_choice='CT_DRIVE',
                             max_new_tokens=60, seed=seed, **sampling)
        text = out.wait()
        assert text.startswith('CT_DRIVE(speed='), text
        _check_call(out.calls[0], 'CT_DRIVE')


def test_auto_completes_a_call_the_reply_starts(model):
    # the reply prefix opens a call, as a model would: the grammar completes it validly
    model, sampling = model
    for seed in range(3):
        CALLS.clear()
        out = model.generate('Hi', functions=FUNCTIONS, reply_prefix='Sure. CT_DRIVE(',
                             max_new_tokens=40, seed=seed, **sampling)
        text = out.wait()
        _check_call(out.calls[0], 'CT_DRIVE')
        # free text never imitates a result: the only result marker is the real one
        assert text.count(' -> ') == len(out.calls), text


def test_json_schema_output_parses_and_validates(model):
    model, sampling = model
    fmt = {'type': 'json_schema', 'json_schema': {'name': 'state', 'schema': SCHEMA}}
    for seed in range(4):
        out = model.generate('State?', response_format=fmt, max_new_tokens=80, seed=seed,
                             **sampling)
        value = json.loads(out.wait())
        assert set(value) == {'speed', 'on', 'gear'}, value
        assert isinstance(value['speed'], int) and 0 <= value['speed'] <= 100
        assert isinstance(value['on'], bool) and value['gear'] in ('low', 'high')
        assert out.stop_reason == 'eos'  # a finished grammar allows only the stop tokens


def test_regex_and_lark_grammar_outputs_match(model):
    model, sampling = model
    for seed in range(3):
        regex = r'(yes|no), [0-9]{1,3}'
        out = model.generate('Go?', response_format={'type': 'regex', 'regex': regex},
                             max_new_tokens=20, seed=seed, **sampling)
        assert re.fullmatch(regex, out.wait()), out.text
        lark = 'start: "go " DIR " " NUM\nDIR: "left" | "right"\nNUM: /[1-9][0-9]?/'
        out = model.generate('Go?', response_format={'type': 'grammar', 'grammar': lark},
                             max_new_tokens=20, seed=seed, **sampling)
        assert re.fullmatch(r'go (left|right) [1-9][0-9]?', out.wait()), out.text


@pytest.mark.parametrize('template', ['chat-ml', 'chat-ml-tools'])
def test_cache_stays_exact_after_constrained_replies(model, template):
    model, _ = model
    history = ChatHistory(model, chat_template=template, tools=FUNCTIONS)
    for prompt in ('Lights on.', 'Now drive.'):
        history.append('user', prompt)
        new, _ = history.embed_chat()
        out = model.generate(new, kv_cache=history.kv_cache, functions=FUNCTIONS,
                             template=history.template, tool_choice='required',
                             max_new_tokens=40)
        out.wait()
        assert out.calls and out.calls[0].success
        history.append('bot', out)
    history.append('user', 'Thanks.')
    if model.api == 'llama_cpp':
        # the decoded positions stay cached: a recompute agrees within the stated tolerance
        # (test_backend_exactness.py), and greedy replies may fork where two tokens nearly tie
        assert_logits_exact(model, history, atol=1.5, rtol=0.0)
        return
    expected = recompute(model, history)
    assert reply(model, history) == expected  # the cached chat equals a recompute
    assert_cache_exact(model, history)


def test_none_never_calls(model):
    model, sampling = model
    CALLS.clear()
    out = model.generate('Hi', functions=FUNCTIONS, tool_choice='none',
                         reply_prefix='CT_LIGHTS(on=True) <tool_call>{"name": "CT_LIGHTS", '
                                      '"arguments": {"on": false}}</tool_call>',
                         max_new_tokens=20, seed=0, **sampling)
    out.wait()
    assert out.calls == [] and CALLS == []


def test_unknown_tool_choice_or_bad_format_is_a_value_error(tiny_llama):
    bad = [{'functions': FUNCTIONS, 'tool_choice': 'CT_FLY'},
           {'functions': FUNCTIONS, 'tool_choice': ''},
           {'tool_choice': 'required'},
           {'functions': FUNCTIONS, 'tool_choice': 'required',
            'response_format': {'type': 'json_object'}},
           {'response_format': {'type': 'json_schema', 'json_schema': {'schema': {
               'type': 'object', 'properties': {'a': {'type': 'wrong'}}}}}},
           {'response_format': {'type': 'json_schema', 'json_schema': {'schema': 7}}},
           {'response_format': {'type': 'json_schema'}},
           {'response_format': {'type': 'regex', 'regex': '(unclosed'}},
           {'response_format': {'type': 'grammar', 'grammar': 'start: missing_rule'}},
           {'response_format': {'type': 'xml'}},
           {'response_format': 'json'}]
    for kwargs in bad:
        with pytest.raises(ValueError):
            tiny_llama.generate('Hi', max_new_tokens=2, **kwargs)
    # the model is fine afterwards
    assert tiny_llama.generate('Hi', max_new_tokens=2, streaming=False) is not None


def test_imitated_results_are_not_calls(tiny_llama):
    CALLS.clear()
    for prefix in ['The lights are on -> lights on',
                   'CT_LIGHTS -> success: true, message: "lights on"',
                   '<tool_response>{"name": "CT_LIGHTS", "content": "lights on"}</tool_response>']:
        out = tiny_llama.generate('Hi', functions=FUNCTIONS, reply_prefix=prefix,
                                  max_new_tokens=5)
        out.wait()
        assert out.calls == [], (prefix, out.calls)
    assert CALLS == []


def test_free_text_cannot_write_a_result_marker(tiny_llama):
    # in 'auto' mode the mask forbids the token that would complete a result marker
    marker = re.compile(r' -> |\)[ \t]*->|<tool_response>')
    grammars = tiny_llama.grammars
    grammar = call_grammar(FUNCTIONS, 'python', free_text=True)
    for text in ['It is done -> ok', 'See <tool_response>', 'CHECK() -> fine', 'f()->\n']:
        constraint = Constraint(grammars.tokenizer, grammar, tiny_llama.config.vocab_size)
        tokens = tiny_llama.tokenize(text).tolist()
        for i, token in enumerate(tokens):
            allowed = constraint.mask(np.zeros(tiny_llama.config.vocab_size, np.float32))
            if np.isinf(allowed[token]):
                # forbidden exactly where the marker would be complete
                assert not marker.search(tiny_llama.detokenize(tokens[:i]))
                assert marker.search(tiny_llama.detokenize(tokens[:i + 1]))
                break
            constraint.advance(token)
        else:
            pytest.fail(f'the grammar let {text!r} through')
    # prose arrows without a call before them stay possible
    constraint = Constraint(grammars.tokenizer, grammar, tiny_llama.config.vocab_size)
    for token in tiny_llama.tokenize('A->B and x ->y').tolist():
        constraint.advance(token)


def test_a_failed_call_is_recorded_as_failed(tiny_llama):
    CALLS.clear()
    out = tiny_llama.generate('Hi', functions=FUNCTIONS, reply_prefix='CT_DRIVE(speed="fast")',
                              max_new_tokens=3)
    out.wait()
    assert len(out.calls) == 1 and CALLS == []
    made = out.calls[0]
    assert made.name == 'CT_DRIVE' and not made.success and made.result.startswith('error:')
    assert made.args == {'speed': 'fast'}


def test_robot_action_integer_range_bounds_the_call(tiny_llama):
    # a functions_file arg filling a uint64 request field: a negative value cannot be written
    rclpy = pytest.importorskip('rclpy')
    from ros2_nano_llm.ros.ros_bridge import RosServiceFunctions
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('test_constrained_bridge', context=context)
    bridge = RosServiceFunctions(node, [{
        'name': 'CT_LIST', 'service': '/ct_list', 'type': 'rcl_interfaces/srv/ListParameters',
        'args': [{'name': 'depth', 'type': 'int'}]}])
    try:
        record = bridge.functions[0]
        assert record.schema['properties']['depth'] == {
            'type': 'integer', 'minimum': 0, 'maximum': 2 ** 64 - 1}
        grammar = call_grammar([record], 'python')
        constraint = Constraint(tiny_llama.grammars.tokenizer, grammar,
                                tiny_llama.config.vocab_size)
        for token in tiny_llama.tokenize('CT_LIST(depth=').tolist():
            constraint.advance(token)
        logits = constraint.mask(np.zeros(tiny_llama.config.vocab_size, np.float32))
        minus = tiny_llama.tokenize('-').tolist()
        assert len(minus) == 1 and np.isinf(logits[minus[0]])
        assert not np.isinf(logits[tiny_llama.tokenize('7').tolist()[0]])
    finally:
        bridge.destroy()
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_prose_after_a_required_call_opens_no_call(tiny_llama):
    # what follows a required call's result: text, never a call of a listed function (not
    # even in a code span) nor a call marker nor a result marker
    grammars = tiny_llama.grammars
    grammar = prose_grammar(FUNCTIONS)
    vocab = tiny_llama.config.vocab_size
    for text in ['Done. CT_DRIVE(speed=1)', 'Use `CT_LIGHTS(on=True)`', 'ok <tool_call>',
                 'ok <|python_tag|>', 'It is done -> ok']:
        constraint = Constraint(grammars.tokenizer, grammar, vocab)
        tokens = tiny_llama.tokenize(text).tolist()
        for token in tokens:
            allowed = constraint.mask(np.zeros(vocab, np.float32))
            if np.isinf(allowed[token]):
                break
            constraint.advance(token)
        else:
            pytest.fail(f'the grammar let {text!r} through')
    # the names themselves, and parentheses elsewhere, stay possible
    constraint = Constraint(grammars.tokenizer, grammar, vocab)
    for token in tiny_llama.tokenize('CT_DRIVE is done (at speed 1), A->B.').tolist():
        constraint.advance(token)

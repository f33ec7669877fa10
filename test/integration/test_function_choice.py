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
A required call's function chosen by the likelihood of each listed name (functions/choice.py).

Real forward passes: the tiny random-weight hf Llama and the embedded SmolLM2 on llama.cpp.
The scores the choice uses (the request's log-probability after each function's description)
are checked against log-probabilities recomputed from scratch (one fresh prefill per token),
and the reply's call against the best of them.
"""

from chat_helpers import assert_cache_exact
import numpy as np
import pytest
from ros2_nano_llm import ChatHistory, FunctionRegistry
from ros2_nano_llm.chat.templates import get_template
from ros2_nano_llm.functions.choice import CONTEXT, last_message, log_softmax, NameChoice
from ros2_nano_llm.generation import prefill
from ros2_nano_llm.models.backend import LogitsBackend
from ros2_nano_llm.models.base import Inputs

CALLS = []


def _turn(angle: float) -> str:
    CALLS.append(('turn', angle))
    return 'turned'


def _lights(on: bool) -> str:
    CALLS.append(('set_headlights', on))
    return f"headlights {'on' if on else 'off'}"


def _battery() -> str:
    CALLS.append(('get_battery',))
    return 'battery 76 %'


REGISTRY = FunctionRegistry()  # this module's functions, apart from the default registry
FUNCTIONS = [
    REGISTRY.register(_turn, name='turn', docs='Turn in place by an angle in degrees.',
                      limits={'angle': {'minimum': -180.0, 'maximum': 180.0}}),
    REGISTRY.register(_lights, name='set_headlights', docs='Switch the headlights on or off.'),
    REGISTRY.register(_battery, name='get_battery', docs='Read the battery level.')]
# the request: token by token, the word "turn" wins the first token (turn(90.0))
DARK = 'It is too dark to see, turn the lights on.'
SYSTEM = 'You are the assistant of a small robot. You control it by calling functions.'


@pytest.fixture(params=['hf', 'llama_cpp'])
def model(request, tiny_llama):
    """Yield each logits backend: the tiny random hf model, the embedded GGUF."""
    if request.param == 'hf':
        return tiny_llama
    return request.getfixturevalue('smollm2_llama_cpp')


def _tolerance(model):
    # llama.cpp computes a batch slightly differently from other batch shapes (see
    # models/llama_cpp.py: at most about 0.3 on logits of ~30); torch float32 by ~1e-5
    return 0.35 if model.api == 'llama_cpp' else 1e-3


def _fresh_logits(model, tokens):
    """Return the last logits (V,) of ``tokens`` prefilled into an empty cache."""
    cache = model.new_cache()
    return model.submit(lambda: prefill(model.backend, cache, Inputs.from_tokens(tokens))
                        ).result()


def _reference_logprob(model, prompt, tokens):
    """Return the total log-probability of ``tokens`` after ``prompt``, from scratch."""
    total = 0.0
    for i, token in enumerate(tokens):
        total += float(log_softmax(_fresh_logits(model, prompt + tokens[:i]))[token])
    return total


def _prompt(model, request):
    history = ChatHistory(model, system_prompt=SYSTEM, tools=FUNCTIONS)
    history.append('user', request)
    return history, history.render().tokens


def test_continuation_logits_are_each_positions_logits(model):
    backend = model.backend
    prompt = backend.tokenize('The robot drives')
    trial = backend.tokenize(' forward one metre, then stops.')
    cache = model.new_cache()

    def run():
        first = prefill(backend, cache, Inputs.from_tokens(prompt))
        rows = backend.continuation_logits(trial, cache.state, len(cache))  # (T, V)
        stepped = LogitsBackend.continuation_logits(backend, trial, cache.state, len(cache))
        after = prefill(backend, cache, Inputs.from_tokens(trial[:1]))
        return first, rows, stepped, after

    first, rows, stepped, after = model.submit(run).result()
    atol = _tolerance(model)
    assert rows.shape == (len(trial), model.config.vocab_size)
    for i in range(len(trial)):
        expected = _fresh_logits(model, prompt + trial[:i + 1])
        np.testing.assert_allclose(rows[i], expected, atol=atol)
        # the base class's way, one decode step at a time (llama.cpp: lone tokens differ more)
        np.testing.assert_allclose(stepped[i], expected, atol=2 * atol)
    # the trial left the cache holding the prompt alone: the next token runs after it
    np.testing.assert_allclose(after, rows[0], atol=atol)
    assert len(cache) == len(prompt) + 1
    assert first.shape == (model.config.vocab_size,)


def _reference_scores(model, request):
    """Return each function's score for ``request``, every token from a fresh prefill."""
    backend = model.backend
    target = backend.tokenize(' ' + request)
    return {r.name: _reference_logprob(model, backend.tokenize(CONTEXT.format(doc=r.doc_line())),
                                       target) for r in FUNCTIONS}


def test_name_choice_scores_are_the_requests_logprob(model):
    history, prompt = _prompt(model, DARK)
    picked = []
    choice = NameChoice(FUNCTIONS, history.template, picked.append)
    chosen = model.submit(lambda: choice.choose(model.backend, prompt)).result()
    expected = _reference_scores(model, DARK)
    assert set(choice.scores) == {'turn', 'set_headlights', 'get_battery'}
    n = len(model.backend.tokenize(' ' + DARK))
    for name, score in expected.items():
        assert choice.scores[name] == pytest.approx(score, abs=n * _tolerance(model))
    assert picked == [chosen] and chosen == max(choice.scores, key=choice.scores.get)


def test_last_message_is_the_request():
    template = get_template('chat-ml')
    text = ('<|im_start|>system\nYou drive.<|im_end|>\n<|im_start|>user\nfirst<|im_end|>\n'
            '<|im_start|>assistant\nok<|im_end|>\n<|im_start|>user\n Lights on. <|im_end|>\n'
            '<|im_start|>assistant\n')
    assert last_message(text, template) == 'Lights on.'
    assert last_message('<|im_start|>system\nYou drive.<|im_end|>\n', template) is None


def _required_reply(model, request, **kwargs):
    history, _ = _prompt(model, request)
    new, _ = history.embed_chat()
    CALLS.clear()
    out = model.generate(new, kv_cache=history.kv_cache, functions=FUNCTIONS,
                         template=history.template, tool_choice='required',
                         stop_tokens=history.stop_tokens, max_new_tokens=24, **kwargs)
    out.wait()
    return history, out, model.grammars.last.choice


def test_required_reply_calls_the_likeliest_function(model):
    history, out, choice = _required_reply(model, DARK)
    expected = _reference_scores(model, DARK)
    assert choice is not None and choice.chosen == max(expected, key=expected.get)
    assert out.calls and out.calls[0].name == choice.chosen, out.text
    assert out.text.startswith(choice.chosen + '('), out.text
    assert out.calls[0].success and CALLS[0][0] == choice.chosen
    if model.api == 'hf':  # the trials left nothing behind: the cache is the chat's
        history.append('bot', out)
        assert_cache_exact(model, history)


def test_the_dark_request_turns_the_lights_on(smollm2_llama_cpp):
    # the failure: token by token the embedded model calls turn(...); the whole
    # names' likelihood calls set_headlights (with the arguments the grammar lets it write)
    model = smollm2_llama_cpp
    model.grammars.choose_by_likelihood = False
    try:
        _, tokenwise, _ = _required_reply(model, DARK)
    finally:
        model.grammars.choose_by_likelihood = True
    _, out, choice = _required_reply(model, DARK)
    assert tokenwise.calls[0].name == 'turn', tokenwise.text
    assert choice.chosen == 'set_headlights' and out.calls[0].name == 'set_headlights', out.text


def test_a_reply_prefix_or_one_function_needs_no_choice(tiny_llama):
    # a prefix may have opened the call already; one function leaves nothing to choose
    history, _ = _prompt(tiny_llama, DARK)
    new, _ = history.embed_chat()
    tiny_llama.generate(new, kv_cache=tiny_llama.new_cache(), functions=FUNCTIONS,
                        template=history.template, tool_choice='required',
                        reply_prefix='set_', max_new_tokens=8).wait()
    assert tiny_llama.grammars.last.choice is None
    tiny_llama.generate(new, kv_cache=tiny_llama.new_cache(), functions=FUNCTIONS,
                        template=history.template, tool_choice='turn', max_new_tokens=8).wait()
    assert tiny_llama.grammars.last.choice is None

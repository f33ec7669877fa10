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
The one generation loop: constraints, stop strings and stale inputs, on real forward passes.

A constraint here only allows a fixed token sequence (what a grammar does in general), so a
tiny random-weight model says exactly what a test needs, through the real loop and cache.
"""

import json
import threading

from chat_helpers import PROMPTS, recompute, reply
import numpy as np
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models.backend import LogitsBackend, TextEngineBackend
from ros2_nano_llm.models.base import Inputs


class Forced:
    """A constraint that allows only ``tokens``, in order, then only the stop ``end``."""

    def __init__(self, tokens, end):
        self.tokens, self.end, self.pos = list(tokens), end, 0
        self.masked = 0

    def mask(self, logits):
        self.masked += 1
        out = np.full_like(logits, -np.inf)
        allowed = self.tokens[self.pos] if self.pos < len(self.tokens) else self.end
        out[allowed] = logits[allowed]
        return out

    def advance(self, token):
        assert token == self.tokens[self.pos], 'the loop accepted a masked-out token'
        self.pos += 1

    def done(self):
        return False


def test_backends_declare_their_kind(tiny_llama, smollm2):
    for model in (tiny_llama, smollm2):
        assert isinstance(model.backend, LogitsBackend)
        assert not isinstance(model.backend, TextEngineBackend)
    with pytest.raises(ValueError, match='text-only'):
        tiny_llama.embed_image(np.zeros((4, 4, 3), np.uint8))


def test_constraint_masks_every_step_and_advances_on_each_token(tiny_llama):
    target = tiny_llama.tokenize('The robot turns left.').tolist()
    eos = tiny_llama.config.eos_token_ids[0]
    free = tiny_llama.generate('Hi', max_new_tokens=len(target))
    free.wait()
    assert free.tokens != target  # the model alone says something else
    forced = Forced(target, eos)
    out = tiny_llama.generate('Hi', max_new_tokens=len(target) + 5, constraint=forced)
    out.wait()
    assert out.tokens == target and out.stop_reason == 'eos'
    assert forced.pos == len(target) and forced.masked == len(target) + 1


class Short(Forced):
    """Forced, and done after two tokens."""

    def done(self):
        return self.pos == 2


def test_constraint_done_ends_the_reply(tiny_llama):
    target = tiny_llama.tokenize('Left, then right.').tolist()
    out = tiny_llama.generate('Hi', max_new_tokens=20, constraint=Short(target, 0))
    out.wait()
    assert out.tokens == target[:2] and out.eos


@pytest.fixture
def bracket_template(tmp_path):
    """Write a JSON template whose stop string is several tokens long."""
    path = tmp_path / 'brackets.json'
    path.write_text(json.dumps({
        'system_prompt': 'You drive a robot.',
        'system': '[SYS]${MESSAGE}[/SYS]',
        'user': '[U]${MESSAGE}[/U]',
        'assistant': '[A]${MESSAGE}[/A]',
        'stop': ['[/A]'],
    }))
    return str(path)


@pytest.mark.parametrize('stream_it', [True, False])
def test_stop_string_leaves_the_reply_and_the_cache(tiny_llama, bracket_template, stream_it):
    history = ChatHistory(tiny_llama, chat_template=bracket_template)
    assert len(tiny_llama.tokenize('[/A]', special=True)) > 1
    history.append('user', 'Where do you go?')
    said = tiny_llama.tokenize('Forward.[/A] and then more').tolist()
    new, _ = history.embed_chat()
    before = len(history.kv_cache)
    out = tiny_llama.generate(new, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                              max_new_tokens=30, constraint=Forced(said, 0))
    pieces = list(out) if stream_it else [out.wait()]
    assert ''.join(pieces) == out.text == 'Forward.'
    assert out.stop_reason == 'stop' and out.eos
    assert tiny_llama.detokenize(out.tokens) == 'Forward.'
    # the cache holds the prompt and the reply's tokens (the last one may be left to the next
    # prefill), never the stop string's
    held = history.kv_cache.keys[before + len(new):]
    assert held == out.tokens[:len(held)] and len(held) >= len(out.tokens) - 1
    history.append('bot', out)
    rendered = tiny_llama.detokenize(history.render(add_generation_prompt=False).tokens)
    assert rendered.endswith('[A]Forward.[/A]') and '[/A][/A]' not in rendered
    history.append('user', 'And then?')
    expected = recompute(tiny_llama, history)
    assert reply(tiny_llama, history) == expected


def test_stale_embed_chat_result_is_refused(tiny_llama):
    history = ChatHistory(tiny_llama)
    history.append('user', 'Hi there.')
    reply(tiny_llama, history)
    history.append('user', 'And now?')
    new, position = history.embed_chat()
    assert position > 0
    history.embed_chat(use_cache=False)  # empties the cache: `new` follows nothing now
    with pytest.raises(ValueError, match='call embed_chat\\(\\) again'):
        tiny_llama.generate(new, kv_cache=history.kv_cache)
    new, position = history.embed_chat()  # a fresh one works
    out = tiny_llama.generate(new, kv_cache=history.kv_cache, max_new_tokens=3)
    out.wait()
    assert out.error is None and len(out.tokens) >= 1


def test_inputs_bound_to_a_cache_that_changed_are_refused(tiny_llama):
    cache = tiny_llama.new_cache()
    tiny_llama.generate('One two three', kv_cache=cache, max_new_tokens=2).wait()
    bound = Inputs.from_tokens(tiny_llama.tokenize(' four')).bind(cache)
    cache.crop(1)
    tiny_llama.generate('One two', kv_cache=cache, max_new_tokens=1).wait()  # other positions
    with pytest.raises(ValueError, match='now holds'):
        tiny_llama.generate(bound, kv_cache=cache)


# ---- one worker thread per model: submit() and subscribe() (how the node drives a chat) ----
def test_chat_driven_on_the_model_worker_alone(tiny_llama):
    """A turn started by submit() streams to its subscriber on the same thread, cache exact."""
    history = ChatHistory(tiny_llama)
    history.append('user', PROMPTS[0])
    expected = recompute(tiny_llama, history)
    seen = {'threads': set(), 'pieces': [], 'ended': threading.Event()}

    def start_turn():
        seen['threads'].add(threading.get_ident())
        new, _ = history.embed_chat()
        out = tiny_llama.generate(new, kv_cache=history.kv_cache,
                                  stop_tokens=history.stop_tokens, max_new_tokens=12)
        out.subscribe(on_piece, on_end)
        return out

    def on_piece(text):
        seen['threads'].add(threading.get_ident())
        seen['pieces'].append(text)

    def on_end(out):
        seen['threads'].add(threading.get_ident())
        history.append('bot', out)
        seen['ended'].set()

    out = tiny_llama.submit(start_turn).result(timeout=60)
    assert seen['ended'].wait(60)
    assert len(seen['threads']) == 1 and threading.get_ident() not in seen['threads']
    assert ''.join(seen['pieces']) == out.text and out.tokens == expected
    history.append('user', PROMPTS[1])
    expected = recompute(tiny_llama, history)
    assert reply(tiny_llama, history) == expected  # the turn left the cache exact


def test_submitted_work_waits_for_the_reply_before_it(tiny_llama):
    out = tiny_llama.generate('Count with me: one two', max_new_tokens=16)
    tokens_then = tiny_llama.submit(lambda: (out.done, len(out.tokens))).result(timeout=60)
    assert tokens_then == (True, len(out.tokens))  # ran after the reply, never during it
    with pytest.raises(ZeroDivisionError):
        tiny_llama.submit(lambda: 1 / 0).result(timeout=60)  # errors reach the caller
    assert tiny_llama.generate('Hi', max_new_tokens=3, streaming=False)  # the worker goes on


def test_waiting_on_itself_is_refused(tiny_llama):
    def blocking():
        return tiny_llama.generate('Hi', max_new_tokens=2, streaming=False)
    with pytest.raises(RuntimeError, match='would wait for itself'):
        tiny_llama.submit(blocking).result(timeout=60)


def test_a_closed_model_takes_no_work(tiny_model_dir):
    model = NanoLLM.from_pretrained(tiny_model_dir('llama'), api='hf')
    model.generate('Hi', max_new_tokens=2).wait()
    model.close()
    with pytest.raises(RuntimeError, match='is closed'):
        model.submit(lambda: None)
    model.close()  # a second close is harmless

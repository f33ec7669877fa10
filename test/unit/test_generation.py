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
The one generation loop with both backend kinds, on small scripted backends (no model).

The same stop rules, context check and statistics apply to tokens sampled from logits and to
chunks an engine streams. Real models run the loop in test/integration/test_generation_loop.py.
"""

import pytest
from ros2_nano_llm.chat.stream import StreamingResponse
from ros2_nano_llm.generation import GenerationJob, run
from ros2_nano_llm.models.backend import Backend, LogitsBackend
from ros2_nano_llm.models.base import Inputs, KVCache
from ros2_nano_llm.models.sampling import SamplingParams
from support.fakes import Engine, Scripted, WORDS


def generate(backend: Backend, prompt='Hi', **kwargs):
    cache = KVCache(backend)
    stream = StreamingResponse(backend.detokenize, timeout=5, kv_cache=cache)
    job = GenerationJob(Inputs.from_tokens(backend.tokenize(prompt)), cache, stream,
                        SamplingParams(), **kwargs)
    stats = {}
    run(backend, job, stats)  # on this thread: the reply has ended when it returns
    assert stream.done
    return stream, cache, stats


@pytest.mark.parametrize('make', [
    lambda: Scripted(['Hel', 'lo', ' [/', 'A]', ' more']),
    lambda: Engine(['Hel', 'lo', ' [/', 'A]', ' more'])])
def test_stop_string_leaves_reply_and_cache_on_both_kinds(make):
    backend = make()
    stream, cache, stats = generate(backend, stop_strings=['[/A]'], max_new_tokens=10)
    assert stream.text == 'Hello ' and stream.stop_reason == 'stop'
    assert backend.detokenize(stream.tokens) == 'Hello '
    # the cache: the prompt, then reply tokens only (the last may be left to the next prefill)
    held = cache.keys[1:]
    assert held == stream.tokens[:len(held)] and len(held) >= len(stream.tokens) - 2
    assert stats['output_tokens'] == len(stream.tokens) and stats['input_tokens'] == 1


@pytest.mark.parametrize('make', [lambda: Scripted(['Hel', 'lo', '<eos>']),
                                  lambda: Engine(['Hel', 'lo'], finish='stop')])
def test_end_of_reply_is_eos_on_both_kinds(make):
    stream, _, _ = generate(make(), max_new_tokens=10, stop_ids=[0])
    assert stream.text == 'Hello' and stream.stop_reason == 'eos' and stream.eos


@pytest.mark.parametrize('make', [lambda: Scripted(['Hel', 'lo', ' world', '!']),
                                  lambda: Engine(['Hel', 'lo', ' world', '!'], finish=None)])
def test_length_and_context_limits_on_both_kinds(make):
    stream, _, _ = generate(make(), max_new_tokens=2, stop_ids=[0])
    assert stream.text == 'Hello' and stream.stop_reason == 'length'
    backend = make()
    backend.config.max_context_len = 3
    stream, cache, _ = generate(backend, max_new_tokens=10, stop_ids=[0])
    assert len(stream.tokens) == 2 and len(cache) <= 3  # stops where the context is full
    long = ' '.join(['Hi'] * 3)
    stream, cache, _ = generate(backend, prompt=long, max_new_tokens=10)
    assert stream.stop_reason == 'error' and 'does not fit the context' in str(stream.error)
    assert len(cache) == 0


def test_the_engine_gets_the_cache_and_the_remaining_budget():
    engine = Engine(['Hel', 'lo', ' world'], finish='length')
    stream, cache, _ = generate(engine, max_new_tokens=5, min_new_tokens=2,
                                stop_strings=['[/A]'], stop_ids=[0])
    assert engine.prompts == [[WORDS.index('Hi')]]
    request = engine.requests[0]
    assert request.max_tokens == 5 and request.min_tokens == 2
    assert request.stop == ['<eos>', '[/A]'] and request.temperature == 0.0
    assert stream.stop_reason == 'length' and stream.text == 'Hello world'


class Anything:
    """A constraint that allows every token."""

    def mask(self, logits):
        return logits

    def advance(self, token):
        pass

    def done(self):
        return False


def test_an_engine_refuses_a_constraint():
    stream, _, _ = generate(Engine(['Hel']), constraint=Anything())
    assert stream.stop_reason == 'error' and 'cannot apply a constraint' in str(stream.error)


class Half(LogitsBackend):
    """Declares the kind but implements none of it."""


def test_backends_must_implement_their_kind():
    with pytest.raises(TypeError, match='abstract'):
        Half()

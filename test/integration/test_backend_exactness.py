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
The chat engine's exactness guarantees hold on every logits backend, with no backend code.

The embedded SmolLM2 runs once through transformers (``hf``, float weights) and once through
llama.cpp (``llama_cpp``, the Q4_1 GGUF as is). Their greedy replies differ from each other
(different weights); each backend must agree with itself: a cached multi-turn chat, after
pop/remove/wrap/reset, replies exactly as recomputing the whole chat from an empty cache, and
its cache predicts the same logits as a fresh prefill, within the tolerance stated below.
"""

from chat_helpers import assert_logits_exact, chat, PROMPTS, recompute, reply, stop_after, \
    stream_twice, turns_equal_recompute
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM

# float32 transformers agrees with itself to ~1e-5 across batch shapes. llama.cpp keeps the
# positions a reply decoded one at a time, and a lone token comes out up to ~0.8 different
# from the same token in a batch (logits of ~30; measured 0.54-0.80 over six turns), so its
# cached chat agrees with a recompute within 1.5. A stale or misplaced position changes logits
# by far more (and the argmax is checked too). bit_exact=True is checked bit for bit in
# test_backend_llama_cpp.py.
TOLERANCE = {'hf': {'atol': 1e-3, 'rtol': 1e-4}, 'llama_cpp': {'atol': 1.5, 'rtol': 0.0}}


@pytest.fixture(scope='module', params=['hf', 'llama_cpp'])
def model(request):
    """Yield the embedded SmolLM2 on each backend."""
    yield request.getfixturevalue('smollm2' if request.param == 'hf' else 'smollm2_llama_cpp')


@pytest.fixture(scope='module', params=['hf', 'llama_cpp'])
def exact_model(request):
    """Yield the embedded SmolLM2 on hf and on llama_cpp with ``bit_exact=True``."""
    if request.param == 'hf':
        yield request.getfixturevalue('smollm2')
        return
    pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed')
    m = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=2048,
                                bit_exact=True)
    yield m
    m.close()


def test_turns_cached_equal_recompute(exact_model):
    # by default llama.cpp's greedy replies can fork from a recompute's where two tokens are
    # nearly tied (this chat forks within 4 turns): the edits below agree; bit_exact always
    model = exact_model
    history = turns_equal_recompute(model, 4)
    exact = {'atol': 0.0, 'rtol': 0.0}
    assert_logits_exact(model, history, **(TOLERANCE['hf'] if model.api == 'hf' else exact))


def test_turns_cached_within_tolerance(model):
    history, _ = chat(model, 4)
    assert_logits_exact(model, history, **TOLERANCE[model.api])


@pytest.fixture(scope='module', params=['tiny-llama', 'tiny-qwen2', 'hf', 'llama_cpp'])
def any_model(request, tiny_model_dir):
    """Yield tiny random-weight models (hf) and the embedded SmolLM2 on each backend."""
    if request.param.startswith('tiny-'):
        m = NanoLLM.from_pretrained(tiny_model_dir(request.param[5:]), api='hf')
        yield m
        m.close()
        return
    yield request.getfixturevalue('smollm2' if request.param == 'hf' else 'smollm2_llama_cpp')


@pytest.mark.parametrize('edit', ['pop', 'remove_middle', 'del_slice', 'reset', 'wrap'])
def test_edits_keep_cache_exact(any_model, edit):
    model = any_model
    history, _ = chat(model, 4)
    if edit == 'pop':
        history.pop(2)
    elif edit == 'remove_middle':
        removed_at = history[3].start_token
        history.remove(3, 5)  # the second user turn and its reply
        # cut at the removal point (shared template tokens of the next turn may stay)
        assert len(history.kv_cache) < removed_at + 8
    elif edit == 'del_slice':
        del history[1:3]
    elif edit == 'reset':
        system_tokens = history[0].num_tokens
        history.reset()
        assert len(history) == 1 and history[0].role == 'system'
        assert len(history.kv_cache) == system_tokens  # the system prompt's state is reused
    elif edit == 'wrap':
        total = history.num_tokens
        history.append('user', PROMPTS[4])
        _, position = history.embed_chat(max_tokens=total - 5, wrap_tokens=total // 2)
        assert history[1].role == 'user' and history.num_tokens <= total - 5
        # only the system prompt (and the next turn's shared template tokens) stays cached
        assert history[0].num_tokens <= position < history[0].num_tokens + 8
        history.pop()
    assert history.kv_cache.keys == history.render().keys[:len(history.kv_cache)]
    history.append('user', PROMPTS[5])
    expected = recompute(model, history)
    assert reply(model, history) == expected
    assert_logits_exact(model, history, **TOLERANCE[model.api])


def test_interleaved_chats_equal_separate_chats(model):
    """Two chats taking turns on one model reply as each does alone (caches never mix)."""
    a, b = ChatHistory(model), ChatHistory(model, system_prompt='You are a pirate.')
    together = []
    for prompt in PROMPTS[:2]:
        for history in (a, b):
            history.append('user', prompt)
            together.append(reply(model, history))
    alone = []
    for system in (None, 'You are a pirate.'):
        history = ChatHistory(model, system_prompt=system)
        for prompt in PROMPTS[:2]:
            history.append('user', prompt)
            alone.append(reply(model, history))
    assert together == [alone[0], alone[2], alone[1], alone[3]]
    assert_logits_exact(model, a, **TOLERANCE[model.api])


def test_stopped_reply_leaves_cache_exact(exact_model):
    model = exact_model
    history, _ = chat(model, 1)
    history.append('user', PROMPTS[1])
    new, _ = history.embed_chat()
    stream = stop_after(model.generate(new, kv_cache=history.kv_cache, max_new_tokens=40))
    assert stream.stop_reason == 'stopped' and len(stream.tokens) < 40
    history.append('bot', stream)
    history.append('user', PROMPTS[2])
    expected = recompute(model, history)
    assert reply(model, history) == expected


def test_streaming_equals_non_streaming(model):
    pieces, stream, text = stream_twice(model)
    assert ''.join(pieces) == stream.text == text
    assert all('\ufffd' not in p for p in pieces)
    assert model.stats['output_tokens'] == len(stream.tokens) > 1
    assert model.stats['decode_rate'] > 0

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
Cached multi-turn chat is token-identical to recomputing from scratch, and the cache is exact.

Runs on tiny random-weight models of several architectures and on the embedded SmolLM2.
"""

from chat_helpers import assert_cache_exact, chat, PROMPTS, recompute, reply, stream_twice, \
    turns_equal_recompute
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
import torch


@pytest.fixture(scope='module', params=['llama', 'qwen2', 'smollm2'])
def model(request, tiny_model_dir, smollm2):
    """Each model the exactness tests run on."""
    if request.param == 'smollm2':
        yield smollm2
        return
    m = NanoLLM.from_pretrained(tiny_model_dir(request.param))
    yield m
    m.close()


def test_five_turns_cached_equal_recompute(model):
    history = turns_equal_recompute(model, 5)
    assert_cache_exact(model, history)


def test_new_turn_prefills_only_new_tokens(model):
    history, _ = chat(model, 2)
    before = len(history.kv_cache)
    history.append('user', PROMPTS[2])
    new, position = history.embed_chat()
    assert position == before  # the cache holds only what the new render starts with
    assert position + len(new) == history.num_tokens
    # only the turn's own tokens (plus at most the last reply token and template suffix)
    user_tokens = history[-1].num_tokens
    assert len(new) <= user_tokens + 8


def test_matches_transformers_generate(model):
    """Greedy output equals transformers' own generate() on the same rendered prompt."""
    history, replies = chat(model, 3)
    history.pop(1)  # drop the last reply: regenerate it with both
    rendered = history.render()
    hf = model.backend.model
    ids = torch.tensor([rendered.tokens])
    out = hf.generate(ids, max_new_tokens=12, do_sample=False,
                      eos_token_id=model.config.eos_token_ids + [2],
                      pad_token_id=model.config.eos_token_ids[0])
    theirs = out[0, ids.shape[1]:].tolist()
    stops = set(model.config.eos_token_ids) | {2}
    theirs = theirs[:next((i for i, t in enumerate(theirs) if t in stops), len(theirs))]
    assert replies[-1] == theirs


def test_wrap_through_generation_stays_usable(tiny_llama):
    history = ChatHistory(tiny_llama, max_tokens=160, wrap_tokens=80)
    for i in range(8):
        history.append('user', f'{PROMPTS[i % len(PROMPTS)]} (turn {i})')
        new, _ = history.embed_chat()  # wraps the chat when it passes max_tokens
        expected = recompute(tiny_llama, history)
        out = tiny_llama.generate(new, kv_cache=history.kv_cache, max_new_tokens=12,
                                  stop_tokens=history.stop_tokens)
        pieces = list(out)  # the stream runs to its end; its pieces are the whole reply
        assert ''.join(pieces) == out.text and out.tokens == expected
        history.append('bot', out)
        assert history.num_tokens <= 160 + 12
    assert history[0].role == 'system' and history[1].role == 'user'
    assert all('(turn 0)' not in m.describe() for m in history), 'the chat never wrapped'
    assert_cache_exact(tiny_llama, history)


def test_streaming_equals_non_streaming(model):
    pieces, stream, text = stream_twice(model)
    assert ''.join(pieces) == stream.text == text
    assert all('\ufffd' not in p for p in pieces)


def test_repetition_penalty_cached_equals_recompute(model):
    history = ChatHistory(model)
    for prompt in PROMPTS[:3]:
        history.append('user', prompt)
        expected = recompute(model, history, repetition_penalty=1.5)
        assert reply(model, history, repetition_penalty=1.5) == expected
    # and it is the same penalty transformers applies (prompt and reply tokens penalized)
    history.append('user', 'Repeat after me: go go go go go go go')
    rendered = history.render()
    ours = recompute(model, history, max_new_tokens=16, repetition_penalty=3.0)
    ids = torch.tensor([rendered.tokens])
    out = model.backend.model.generate(
        ids, max_new_tokens=len(ours), min_new_tokens=len(ours), do_sample=False,
        repetition_penalty=3.0, pad_token_id=model.config.eos_token_ids[0])
    assert ours == out[0, ids.shape[1]:].tolist()


def test_save_and_restore_round_trip(model):
    history, _ = chat(model, 3)
    saved = history.to_list()
    restored = ChatHistory(model)
    restored.from_list(saved)
    assert restored.render().keys == history.render().keys
    history.append('user', PROMPTS[4])
    restored.append('user', PROMPTS[4])
    assert reply(model, restored) == reply(model, history)


def test_wrap_tokens_set_after_construction_is_the_one_used(tiny_llama):
    # the node sets history.wrap_tokens from its wrap_tokens parameter after building the chat
    for wrap in (40, 100):
        history = ChatHistory(tiny_llama, max_tokens=160)
        history.wrap_tokens = wrap
        for i in range(12):
            history.append('user', f'{PROMPTS[i % len(PROMPTS)]} (turn {i})')
            history.append('bot', f'Answer number {i} to that, in a few words.')
        history.embed_chat()  # past max_tokens: wraps to the newest ``wrap`` tokens
        kept = sum(m.num_tokens for m in history.messages[1:])
        assert not history.messages[1].describe().endswith('(turn 0)') and 0 < kept <= wrap

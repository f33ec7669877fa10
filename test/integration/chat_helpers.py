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
"""Shared helpers for the chat-engine integration tests: run turns, recompute, compare caches."""

import numpy as np
from ros2_nano_llm import ChatHistory
from ros2_nano_llm.models.base import Inputs, KVCache

PROMPTS = ['Hi there, who are you?', 'Tell me about robots.', 'What is 2 + 2?',
           'Name a colour.', 'Say goodbye in French.', 'One more thing: count to three.']
SEA = 'Write a short sentence about the sea.'


def reply(model, history, max_new_tokens=12, use_cache=True, **kwargs):
    """Generate one greedy bot turn for ``history``; append it; return its tokens."""
    new, _ = history.embed_chat(use_cache=use_cache)
    out = model.generate(new, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                         max_new_tokens=max_new_tokens, **kwargs)
    out.wait()
    history.append('bot', out)
    return list(out.tokens)


def recompute(model, history, max_new_tokens=12, **kwargs):
    """Greedy reply to the whole chat from an empty cache (history left untouched)."""
    inputs = history.render()
    out = model.generate(inputs, kv_cache=model.new_cache(), stop_tokens=history.stop_tokens,
                         max_new_tokens=max_new_tokens, **kwargs)
    out.wait()
    return list(out.tokens)


def chat(model, turns, **kwargs):
    """Return a history with ``turns`` answered turns (cached path) and the replies' tokens."""
    history = ChatHistory(model, **kwargs)
    replies = []
    for prompt in PROMPTS[:turns]:
        history.append('user', prompt)
        replies.append(reply(model, history))
    return history, replies


def turns_equal_recompute(model, turns):
    """Answer ``turns`` turns on the cache, each equal to recomputing the chat; return it."""
    history = ChatHistory(model)
    for prompt in PROMPTS[:turns]:
        history.append('user', prompt)
        expected = recompute(model, history)
        got = reply(model, history)
        assert got == expected
        assert got, 'a reply must have tokens'
    return history


def stream_twice(model, max_new_tokens=20, between=None):
    """
    Answer ``SEA`` streaming, then again without streaming, each from an empty cache.

    ``between`` runs between the two. Returns ``(pieces, stream, text)``.
    """
    history = ChatHistory(model)
    history.append('user', SEA)
    new, _ = history.embed_chat()
    stream = model.generate(new, kv_cache=model.new_cache(), max_new_tokens=max_new_tokens)
    pieces = list(stream)
    if between is not None:
        between()
    text = model.generate(new, kv_cache=model.new_cache(), max_new_tokens=max_new_tokens,
                          streaming=False)
    return pieces, stream, text


def stop_after(stream, pieces=3):
    """Read ``stream``, asking it to stop once ``pieces`` pieces arrived; return it ended."""
    for i, _ in enumerate(stream):
        if i == pieces - 1:
            stream.stop()
    return stream


def layer_tensors(cache_state):
    """Return [(keys, values)] of every layer of a transformers cache."""
    return [(layer.keys, layer.values) for layer in cache_state.layers]


def assert_cache_exact(model, history, atol=1e-4):
    """
    Assert the history's KV cache equals a fresh prefill of the same positions.

    Wrong positions or stale entries differ by O(1); float noise from other batch shapes by
    about 1e-5.
    """
    import torch  # hf caches only
    cache = history.kv_cache
    n = len(cache)
    assert n > 0
    rendered = history.render()
    assert rendered.keys[:n] == cache.keys, 'cache holds positions the chat does not have'
    fresh = KVCache(model.backend)
    model.backend.prefill(_head(rendered, n), fresh.state, 0)
    for (k1, v1), (k2, v2) in zip(layer_tensors(cache.state), layer_tensors(fresh.state)):
        assert k1.shape == k2.shape, (k1.shape, k2.shape)
        torch.testing.assert_close(k1, k2, atol=atol, rtol=1e-3)
        torch.testing.assert_close(v1, v2, atol=atol, rtol=1e-3)


def _head(inputs, n):
    out = Inputs()
    pos = 0
    for seg in inputs.segments:
        size = len(seg) if isinstance(seg, list) else int(seg.shape[0])
        take = min(size, n - pos)
        if take <= 0:
            break
        out.segments.append(seg[:take])
        pos += take
    out.keys = list(inputs.keys[:n])
    return out


def assert_logits_exact(model, history, atol=1e-4, rtol=1e-3):
    """
    Check that the history's cache predicts what a from-scratch prefill of the chat predicts.

    Works on every backend that returns logits: the rest of the rendered chat is prefilled
    after the cached positions, and its last logits must equal those of a fresh cache
    prefilled with the whole chat. The history's cache is cropped back afterwards.
    """
    cache, backend = history.kv_cache, model.backend
    rendered = history.render()
    n = len(cache)
    assert n > 0
    assert rendered.keys[:n] == cache.keys, 'cache holds positions the chat does not have'
    if n == len(rendered):
        cache.crop(n - 1)  # the model needs one new position to predict from
        n -= 1
    cached = backend.prefill(rendered.slice_from(n), cache.state, n)
    backend.crop(cache.state, n)  # back to what cache.keys records
    fresh = backend.prefill(_head(rendered, len(rendered)), backend.new_cache(), 0)
    np.testing.assert_allclose(cached, fresh, atol=atol, rtol=rtol)
    assert int(cached.argmax()) == int(fresh.argmax())

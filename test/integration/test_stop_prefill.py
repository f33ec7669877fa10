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
``stop()`` during a long prefill ends it early, on llama_cpp and on hf (issue 21 item 12).

A reply's ``stop()`` used to wait for the whole prompt to be prefilled (a 10 s wait for the
node's ``~/stop``). Now llama.cpp's abort callback ends ``llama_decode`` within one graph
node, and hf checks the flag before each decoder layer. The work done is counted (llama.cpp's
evaluated positions, hf's decoder layers run), never timed. The cache is left as it was
before the stopped prompt, so the chat's next turn equals a recompute.
"""

import threading

from chat_helpers import assert_logits_exact, PROMPTS, recompute, reply
import pytest
from ros2_nano_llm import ChatHistory, FunctionRegistry, NanoLLM

LONG = ' '.join(f'Note {i}: the robot checked shelf {i} and found it in order.'
                for i in range(90))  # about 1,500 tokens


@pytest.fixture(scope='module')
def llama_small_batches():
    """Yield the embedded GGUF on llama.cpp, prefilling in batches of 64 (many chunks)."""
    pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed')
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=2048,
                                    n_batch=64, bit_exact=True)
    yield model
    model.close()


def answered_chat(model):
    """Return a chat with one answered turn and the long prompt appended (not yet run)."""
    history = ChatHistory(model)
    history.append('user', PROMPTS[0])
    reply(model, history)
    history.append('user', LONG)
    return history


def start_long_turn(model, history):
    """Start the reply to the long prompt; return (its stream, how many positions it had)."""
    new, _ = history.embed_chat()
    assert len(new) > 1000
    stream = model.generate(new, kv_cache=history.kv_cache, max_new_tokens=8,
                            stop_tokens=history.stop_tokens)
    return stream, len(new)


def assert_next_turn_exact(model, history, cached_before):
    """Check the stopped prompt left nothing behind: drop it; the next turn is a recompute."""
    assert history.kv_cache.keys == cached_before[:len(history.kv_cache)]
    history.pop()
    history.append('user', PROMPTS[2])
    expected = recompute(model, history)
    assert reply(model, history) == expected


def test_stop_before_the_prefill_runs_none_of_it(llama_small_batches):
    model = llama_small_batches
    history = answered_chat(model)
    cached_before = list(history.kv_cache.keys)
    release = threading.Event()
    busy = model.submit(release.wait)  # the worker is busy: the reply waits in the queue
    stream, _ = start_long_turn(model, history)
    stream.stop()
    before = model.backend.evaluated()
    release.set()
    busy.result()
    stream.wait()
    assert stream.stop_reason == 'stopped' and stream.tokens == []
    assert model.backend.evaluated() == before  # not one position of the prompt ran
    assert_next_turn_exact(model, history, cached_before)


def test_stop_during_the_llama_cpp_prefill_aborts_it(llama_small_batches):
    model = llama_small_batches
    backend = model.backend
    history = answered_chat(model)
    cached_before = list(history.kv_cache.keys)
    before = backend.evaluated()
    stream, prompt = start_long_turn(model, history)

    def stop_once_a_batch_ran():
        while backend.evaluated() == before and not stream.done:
            threading.Event().wait(0.001)
        stream.stop()

    stopper = threading.Thread(target=stop_once_a_batch_ran)
    stopper.start()
    stream.wait()
    stopper.join()
    assert stream.stop_reason == 'stopped' and stream.tokens == []
    ran = backend.evaluated() - before
    # batches of 64 (and, bit_exact, the last reply re-run): a stop after the first batch
    # ends the prefill long before its ~1,500 positions
    assert 0 < ran < prompt // 4, (ran, prompt)
    assert_next_turn_exact(model, history, cached_before)


def test_default_llama_cpp_cache_stays_within_tolerance_after_a_stop(smollm2_llama_cpp):
    model = smollm2_llama_cpp
    history = answered_chat(model)
    cached_before = list(history.kv_cache.keys)
    release = threading.Event()
    busy = model.submit(release.wait)
    stream, _ = start_long_turn(model, history)
    stream.stop()
    release.set()
    busy.result()
    stream.wait()
    assert stream.stop_reason == 'stopped' and history.kv_cache.keys == cached_before
    history.pop()
    history.append('user', PROMPTS[2])
    assert_logits_exact(model, history, atol=1.5, rtol=0.0)  # test_backend_exactness's


def test_stop_during_the_hf_prefill_ends_it_at_a_layer(smollm2):
    model = smollm2
    history = answered_chat(model)
    cached_before = list(history.kv_cache.keys)
    from transformers.modeling_layers import GradientCheckpointingLayer
    layers = [m for m in model.backend.model.modules()
              if isinstance(m, GradientCheckpointingLayer)]
    assert len(layers) == 30  # SmolLM2-135M's decoder layers
    ran = []
    stream = None

    def count(module, _args):
        ran.append(module)
        if len(ran) == 3:
            stream.stop()  # a stop that comes while the prompt is inside layer 3

    hooks = [layer.register_forward_pre_hook(count) for layer in layers]
    try:
        release = threading.Event()
        busy = model.submit(release.wait)  # hooks see the long prefill, not another one
        stream, prompt = start_long_turn(model, history)
        release.set()
        busy.result()
        stream.wait()
    finally:
        for hook in hooks:
            hook.remove()
    assert stream.stop_reason == 'stopped' and stream.tokens == []
    assert len(ran) == 3  # the prefill ended before layer 3 ran, 27 layers short
    assert_next_turn_exact(model, history, cached_before)


def test_a_stop_at_a_call_result_keeps_the_reply_and_its_figures(tiny_llama):
    # the stop comes while a call runs: the call ran, so its result joins the reply (the
    # chat knows next turn) and the cache holds exactly the reply's tokens; then it ends
    registry = FunctionRegistry()
    reply_of = {}

    def halt() -> str:
        reply_of['out'].stop()  # as ~/stop would, while the call runs
        return 'halted'

    registry.register(halt, name='HALT', docs='Halt.')
    history = ChatHistory(tiny_llama, tools=list(registry))
    history.append('user', 'Halt.')
    new, _ = history.embed_chat()
    cached = len(history.kv_cache) + len(new)
    out = reply_of['out'] = tiny_llama.generate(
        new, kv_cache=history.kv_cache, functions=registry, reply_prefix='Sure. HALT()',
        max_new_tokens=8)
    out.wait()
    assert out.stop_reason == 'stopped' and [c.name for c in out.calls] == ['HALT']
    assert out.text.endswith('HALT() -> halted'), out.text
    assert len(history.kv_cache) == cached + len(out.tokens), (len(history.kv_cache), cached,
                                                               out.tokens)

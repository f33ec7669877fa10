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
"""Bad input gets a clear error and leaves the chat usable."""

import os

from chat_helpers import recompute, reply
import numpy as np
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models import loading


def test_missing_model_path():
    with pytest.raises(FileNotFoundError, match='model path not found'):
        NanoLLM.from_pretrained('/no/such/model/dir')
    with pytest.raises(FileNotFoundError, match='model path not found'):
        NanoLLM.from_pretrained('./missing.gguf')


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(RuntimeError, match='could not download .*Without network'):
        NanoLLM.from_pretrained('some-org/some-model-that-is-not-cached')


def test_unknown_api_and_quantization(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown api 'nope'; choose one of"):
        NanoLLM.from_pretrained(tiny_model_dir('llama'), api='nope')
    with pytest.raises(ValueError, match='quantization .* is not supported'):
        NanoLLM.from_pretrained(tiny_model_dir('llama'), quantization='q4f16_ft')


def test_unknown_template_lists_valid_names(tiny_llama):
    with pytest.raises(ValueError) as error:
        ChatHistory(tiny_llama, chat_template='llama-9')
    assert 'chat-ml' in str(error.value) and 'llama-3' in str(error.value)


def test_bad_prompts_leave_history_usable(tiny_llama):
    history = ChatHistory(tiny_llama, max_tokens=300)
    history.append('user', 'Hello!')
    first = reply(tiny_llama, history)
    before = history.to_list()
    with pytest.raises(ValueError, match='empty prompt'):
        history.append('user', '   ')
    with pytest.raises(ValueError, match='longer than the chat allows'):
        history.append('user', 'word ' * 5000)
    with pytest.raises(ValueError, match='text-only model'):
        history.append('user', image=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        history.append('user', image=b'not an image at all')
    with pytest.raises(ValueError, match='empty prompt'):
        tiny_llama.generate('')
    with pytest.raises(ValueError, match='temperature'):
        tiny_llama.generate('hi', do_sample=True, temperature=0)
    with pytest.raises(TypeError, match='unexpected'):
        tiny_llama.generate('hi', max_new_tokenz=3)
    assert history.to_list() == before and first
    history.append('user', 'Still there?')
    expected = recompute(tiny_llama, history)
    assert reply(tiny_llama, history) == expected


def test_generation_error_reaches_the_reader(tiny_llama):
    cache = tiny_llama.new_cache()
    limit = tiny_llama.config.max_context_len
    stream = tiny_llama.generate(list(range(10, 10 + limit)), kv_cache=cache)
    with pytest.raises(RuntimeError, match='does not fit the context'):
        stream.wait()
    assert len(cache) == 0  # nothing half-written
    after = tiny_llama.generate('still works', max_new_tokens=2)
    after.wait()
    assert after.error is None and after.stop_reason in ('eos', 'length')
    assert 1 <= len(after.tokens) <= 2


def test_stop_keeps_partial_reply_and_exact_cache(tiny_llama):
    history = ChatHistory(tiny_llama)
    history.append('user', 'Tell me a long story.')
    new, _ = history.embed_chat()
    stream = tiny_llama.generate(new, kv_cache=history.kv_cache, max_new_tokens=200,
                                 min_new_tokens=200)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(stream.tokens) >= 5:
            stream.stop()
    assert stream.stop_reason == 'stopped' and 5 <= len(stream.tokens) < 200
    history.append('bot', stream)
    assert history[-1].tokens == stream.tokens
    history.append('user', 'Go on.')
    expected = recompute(tiny_llama, history)
    assert reply(tiny_llama, history) == expected


def test_min_new_tokens_bans_stop_tokens(tiny_llama):
    # the greedy first token, made a stop token: without min_new_tokens the reply is empty
    first = tiny_llama.generate('Hi', max_new_tokens=1)
    first.wait()
    stop = first.tokens[0]
    free = tiny_llama.generate('Hi', max_new_tokens=6, stop_tokens=[stop])
    free.wait()
    assert free.tokens == [] and free.stop_reason == 'eos'
    out = tiny_llama.generate('Hi', max_new_tokens=6, min_new_tokens=6, stop_tokens=[stop])
    out.wait()
    assert len(out.tokens) == 6 and stop not in out.tokens


def test_sampling_is_seeded_and_differs_from_greedy(tiny_llama):
    kwargs = {'max_new_tokens': 12, 'do_sample': True, 'temperature': 1.5, 'top_p': 0.99}
    a = tiny_llama.generate('Once upon a time', seed=7, **kwargs)
    b = tiny_llama.generate('Once upon a time', seed=7, **kwargs)
    c = tiny_llama.generate('Once upon a time', seed=8, **kwargs)
    greedy = tiny_llama.generate('Once upon a time', max_new_tokens=12)
    a.wait(), b.wait(), c.wait(), greedy.wait()
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens and a.tokens != greedy.tokens


def test_gguf_conversion_is_cached(smollm2):
    gguf = loading.default_model_path()
    converted = loading.cached_conversion(gguf)
    assert converted and os.path.isfile(os.path.join(converted, 'config.json'))
    assert smollm2.config.path == converted
    assert converted.startswith(loading.cache_root())

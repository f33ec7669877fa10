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
"""api='llama_cpp': the embedded GGUF in llama.cpp, its cache handles, options and errors."""

import numpy as np
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models.base import Inputs
from ros2_nano_llm.models.loading import default_model_path

pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed (pip install '
                    'llama-cpp-python==0.3.36)')

CHAT = ('<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\n'
        'Héllo, robot! 🤖 What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n')


@pytest.fixture(scope='module')
def llama():
    """Yield the embedded SmolLM2 GGUF on llama.cpp (2 threads, a 2048-token context)."""
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=2048)
    yield model
    model.close()


def run(backend, tokens, state=None, start=0):
    """Prefill ``tokens`` into ``state`` (a new cache by default); return (logits, state)."""
    state = backend.new_cache() if state is None else state
    return backend.prefill(Inputs.from_tokens(tokens), state, start), state


def test_default_is_the_embedded_gguf(llama):
    cfg = llama.config
    assert cfg.path == default_model_path()
    assert cfg.max_context_len == 2048 and cfg.vocab_size == 49152
    assert llama.tokenize('<|im_end|>', special=True).tolist() == [cfg.eos_token_ids[0]]
    assert len(llama.tokenize('<|im_end|>')) > 1  # typed text is never markup
    assert '<|im_start|>' in cfg.tokenizer_chat_template  # the GGUF's own template
    assert ChatHistory(llama).template.name == 'chat-ml'


@pytest.mark.parametrize('special', [True, False])
def test_tokenizer_matches_transformers(llama, smollm2, special):
    ids = llama.tokenize(CHAT, special=special).tolist()
    assert ids == smollm2.tokenize(CHAT, special=special).tolist()
    assert llama.detokenize(ids) == CHAT
    assert llama.detokenize(ids, skip_special_tokens=True) == smollm2.detokenize(ids, True)
    robot = llama.tokenize('🤖').tolist()
    assert len(robot) > 1 and llama.detokenize(robot[:1]).endswith('\ufffd')  # a cut character


def test_options_reach_llama_cpp():
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=1, n_ctx=512,
                                    n_gpu_layers=0, n_batch=64)
    llm = model.backend.llm
    assert llm.n_ctx() == 512 == model.config.max_context_len
    assert llm.context_params.n_threads == 1 and llm.n_batch == 64
    assert llm.model_params.n_gpu_layers == 0
    history = ChatHistory(model)
    history.append('user', 'Hi!')
    new, _ = history.embed_chat()
    assert model.generate(new, kv_cache=history.kv_cache, max_new_tokens=3,
                          streaming=False)
    model.close()


def test_prefill_longer_than_a_batch_equals_one_batch():
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=512,
                                    n_batch=25)
    # batches of 25, 25, 24, 2: never a lone token
    tokens = model.backend.tokenize(CHAT * 2, special=True)
    assert len(tokens) % 25 == 1
    chunked, _ = run(model.backend, tokens)
    one = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=512)
    whole, _ = run(one.backend, tokens)
    assert np.array_equal(chunked, whole)
    model.close()
    one.close()


def test_crop_then_prefill_equals_fresh_prefill(llama):
    backend = llama.backend
    tokens = backend.tokenize(CHAT, special=True)
    more = backend.tokenize('Four.<|im_end|>\n<|im_start|>user\nAnd 3 + 3?<|im_end|>\n',
                            special=True)
    _, state = run(backend, tokens)
    for i, t in enumerate(more[:5]):  # decode steps, then cut into them and before them
        backend.decode_step(t, state, len(tokens) + i)
    backend.crop(state, len(tokens) - 4)
    assert len(state) == len(tokens) - 4
    cached, _ = run(backend, tokens[-4:] + more, state, len(tokens) - 4)
    fresh, _ = run(backend, tokens + more)
    assert np.array_equal(cached, fresh)


def decoded_reply(backend):
    """Prefill CHAT and decode a short reply one token at a time; return what the tests use."""
    tokens = backend.tokenize(CHAT, special=True)
    reply = backend.tokenize('Four.', special=True)
    _, state = run(backend, tokens)
    for i, t in enumerate(reply):
        backend.decode_step(t, state, len(tokens) + i)
    tail = backend.tokenize('<|im_end|>\n', special=True)
    return tokens, reply, tail, state


def test_next_prefill_runs_only_new_tokens(llama):
    """The positions a reply decoded stay: the next prefill runs its own tokens only."""
    backend = llama.backend
    tokens, reply, tail, state = decoded_reply(backend)
    before = backend.evaluated()
    cached, _ = run(backend, tail, state, len(tokens) + len(reply))
    assert backend.evaluated() - before == len(tail)
    fresh, _ = run(backend, tokens + reply + tail)
    # a lone decode step differs from a batched position by < 1.5 on logits of ~30
    np.testing.assert_allclose(cached, fresh, atol=1.5, rtol=0)
    assert int(cached.argmax()) == int(fresh.argmax())


def test_bit_exact_option_rebatches_decoded_positions():
    """bit_exact=True: decoded positions run again with the next prefill, bit for bit."""
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=512,
                                    bit_exact=True)
    backend = model.backend
    tokens, reply, tail, state = decoded_reply(backend)
    before = backend.evaluated()
    cached, _ = run(backend, tail, state, len(tokens) + len(reply))
    assert backend.evaluated() - before == len(reply) + len(tail)  # what it costs
    fresh, _ = run(backend, tokens + reply + tail)
    assert np.array_equal(cached, fresh)
    one, _ = run(backend, tail[:1], state, len(tokens) + len(reply))  # a lone token is batched too
    assert np.array_equal(one, run(backend, tokens + reply + tail[:1])[0])
    model.close()


def test_context_is_the_trained_one_capped_by_max_context_len(smollm2):
    """api='llama_cpp' and api='hf' give the same model the same context."""
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=1)
    assert model.config.max_context_len == smollm2.config.max_context_len == 8192
    model.close()
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=1,
                                    max_context_len=1024)
    assert model.config.max_context_len == 1024
    model.close()


def test_caches_switching_on_one_context_stay_separate(llama):
    backend = llama.backend
    a_tokens = backend.tokenize(CHAT, special=True)
    b_tokens = backend.tokenize(CHAT.replace('2 + 2', '7 * 6'), special=True)
    _, a = run(backend, a_tokens)
    _, b = run(backend, b_tokens)           # a is saved aside
    backend.crop(a, 10)                     # cut while not on the context
    again, _ = run(backend, a_tokens[10:], a, 10)   # a comes back, cut, and goes on
    assert np.array_equal(again, run(backend, a_tokens)[0])
    step_b = backend.decode_step(42, b, len(b_tokens))  # b was saved aside meanwhile
    assert np.array_equal(step_b, backend.decode_step(42, run(backend, b_tokens)[1],
                                                      len(b_tokens)))


def test_errors_say_what_to_do(llama, tiny_model_dir):
    with pytest.raises(ValueError, match='gguf'):
        NanoLLM.from_pretrained(tiny_model_dir('llama'), api='llama_cpp')
    image = Inputs()
    image.add_embedding(np.zeros((2, 576), np.float32))
    with pytest.raises(ValueError, match='text only'):
        llama.backend.prefill(image, llama.backend.new_cache(), 0)
    with pytest.raises(ValueError, match='n_ctx=2048'):
        run(llama.backend, [198] * 2049)
    with pytest.raises(ValueError, match='not in the vocabulary'):
        llama.detokenize([49152])  # llama.cpp itself would abort the process

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
Warm restart (issue 20): a chat's KV state saved beside its file, loaded only when it fits.

On the embedded SmolLM2 (llama_cpp) and a tiny random-weight model (hf): save, a new model
object, load, and the next turn prefills only its own tokens and replies as a recompute;
another chat, model or backend and cut or altered files are refused with a reason.
"""

import os

from chat_helpers import chat, PROMPTS, recompute, reply
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models.cache_file import load_state, save_state, state_path


def load(kind, tiny_model_dir):
    """Return a new model object of ``kind``."""
    if kind == 'llama_cpp':
        pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed')
        return NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=2048)
    return NanoLLM.from_pretrained(tiny_model_dir('llama'), api='hf')


@pytest.fixture(params=['llama_cpp', 'hf'])
def saved(request, tiny_model_dir, tmp_path):
    """Yield ``(kind, chat file, state file, chat entries)`` of a saved 2-turn chat."""
    model = load(request.param, tiny_model_dir)
    history, _ = chat(model, 2)
    chat_file = str(tmp_path / 'chat.json')
    history.save(chat_file)
    ok, reason = save_state(model, history, state_path(chat_file))
    assert ok, reason
    entries = history.to_list()
    model.close()
    yield request.param, chat_file, state_path(chat_file), entries


def restored(model, chat_file):
    """Return a new history of ``model`` holding the chat saved in ``chat_file``."""
    history = ChatHistory(model)
    history.load(chat_file)
    return history


def test_warm_restart_prefills_only_the_new_turn(saved, tiny_model_dir):
    kind, chat_file, path, _ = saved
    model = load(kind, tiny_model_dir)
    history = restored(model, chat_file)
    ok, reason = load_state(model, history, path)
    assert ok, reason
    cached = len(history.kv_cache)
    assert cached > 0 and history.kv_cache.keys == history.render().keys[:cached]
    history.append('user', PROMPTS[2])
    new, position = history.embed_chat()
    assert position == cached  # the restored positions are used as they are
    assert len(new) <= history[-1].num_tokens + 8  # the turn's own tokens (and template)
    expected = recompute(model, history)
    assert reply(model, history) == expected
    model.close()


def test_refused_with_a_reason(saved, tiny_model_dir, tmp_path):
    kind, chat_file, path, entries = saved
    model = load(kind, tiny_model_dir)
    other = ChatHistory(model, system_prompt='You are a pirate.')  # other tokens
    other.append('user', PROMPTS[0])
    assert load_state(model, other, path) == (False, "the KV state's tokens are not the "
                                              "chat's (the chat changed since it was saved)")
    history = restored(model, chat_file)
    with open(path, 'rb') as f:
        data = f.read()
    cases = {'cut': data[:len(data) // 2], 'altered': data[:-10] + b'x' * 10,
             'empty': b'', 'header': data[:40]}
    for name, content in cases.items():
        bad = str(tmp_path / f'{name}.kv')
        with open(bad, 'wb') as f:
            f.write(content)
        ok, reason = load_state(model, history, bad)
        assert not ok and reason, name
        assert len(history.kv_cache) == 0, name  # nothing was loaded
    link = str(tmp_path / 'link.kv')
    os.symlink(path, link)
    ok, reason = load_state(model, history, link)
    assert not ok and 'symlink' in reason
    ok, reason = load_state(model, history, path, max_bytes=100)
    assert not ok and 'limit' in reason
    model.close()
    # another model, and another backend
    other_kind = 'hf' if kind == 'llama_cpp' else 'llama_cpp'
    model = load(other_kind, tiny_model_dir)
    history = ChatHistory(model)
    history.from_list(entries)  # the same chat on another backend
    ok, reason = load_state(model, history, path)
    assert not ok and f"api='{kind}'" in reason
    model.close()
    if kind == 'hf':
        model = NanoLLM.from_pretrained(tiny_model_dir('qwen2'), api='hf')
        history = ChatHistory(model)
        history.from_list(entries)
        assert load_state(model, history, path) == (
            False, 'the KV state is from another model file')
        model.close()


def test_size_bound_and_no_link_followed(smollm2_llama_cpp, tmp_path):
    model = smollm2_llama_cpp
    history, _ = chat(model, 1)
    ok, reason = save_state(model, history, str(tmp_path / 'big.kv'), max_bytes=1000)
    assert not ok and 'limit' in reason and not os.path.exists(tmp_path / 'big.kv')
    victim = tmp_path / 'victim'
    victim.write_text('keep me')
    path = str(tmp_path / 'chat.kv')
    os.symlink(str(victim), path)  # a planted link at the state file's path
    ok, reason = save_state(model, history, path)
    assert ok, reason
    assert victim.read_text() == 'keep me' and not os.path.islink(path)
    assert [f for f in os.listdir(tmp_path) if f.endswith('.tmp')] == []

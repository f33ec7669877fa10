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
ChatHistory without a model: a NanoLLM over the one-char-per-token fake backend.

The history keeps the messages and the tokens in its KV cache; a changed chat is handed
over from the longest prefix the cache still holds.
"""

import pytest
from ros2_nano_llm.chat.history import ChatHistory
from ros2_nano_llm.llm import NanoLLM
from support.fakes import Chars


@pytest.fixture
def history():
    model = NanoLLM(Chars(), 'chars')
    yield ChatHistory(model, chat_template='chat-ml', system_prompt='Be brief.')
    model.close()


def test_a_new_chat_holds_the_system_prompt(history):
    assert [(m.role, m.content) for m in history] == [('system', 'Be brief.')]


def test_embed_chat_hands_over_only_what_the_cache_lacks(history):
    history.append('user', 'Hello.')
    first, position = history.embed_chat()
    assert position == 0 and len(first) > len('Hello.')
    history.model.generate(first, kv_cache=history.kv_cache, max_new_tokens=4).wait()
    cached = len(history.kv_cache)
    history.pop()
    history.append('user', 'Hello!')  # the chat changed in its last characters only
    new, position = history.embed_chat()
    assert 0 < position < cached and len(new) < len(first)
    assert len(history.kv_cache) == position  # the cache was cropped to the shared prefix


def test_a_reply_joins_the_chat_with_its_cache(history):
    history.append('user', 'How are you?')
    inputs, _ = history.embed_chat()
    reply = history.model.generate(inputs, kv_cache=history.kv_cache,
                                   stop_tokens=history.stop_tokens, max_new_tokens=40)
    history.append('bot', reply)
    assert history[-1].role == 'bot' and history[-1].content == 'Fine, thanks.'
    _, position = history.embed_chat()
    assert position >= len(history.kv_cache) - 1  # nothing of the reply is prefilled again


def test_pop_and_reset(history):
    history.append('user', 'One.')
    history.append('user', 'Two.')
    assert [m.content for m in history.pop(2)] == ['One.', 'Two.']
    history.append('user', 'Three.')
    history.reset()
    assert len(history) == 1 and history[0].role == 'system'
    history.reset(system_prompt=False)
    assert len(history) == 0


def test_an_overflowing_chat_wraps_to_its_newest_turns(history):
    history.max_tokens, history.wrap_tokens = 120, 60
    for i in range(8):
        history.append('user', f'Message number {i}.')
        history.append('bot', 'Noted.')
    history.append('user', 'And the last one?')
    inputs, _ = history.embed_chat()
    assert len(inputs) <= 120
    assert history[0].role == 'system' and 'last one' in history[-1].content
    assert all('number 0' not in m.content for m in history)

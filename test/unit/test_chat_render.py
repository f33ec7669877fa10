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
Rendering a chat without a model: the table of positions, image embedding, function docs.

A render returns the input and where each message sits; it writes nothing into messages.
The history embeds images through the backend, and writes the functions' docs in its
template's tool-call syntax.
"""

import numpy as np
import pytest
from ros2_nano_llm.chat.history import ChatHistory
from ros2_nano_llm.chat.message import ChatMessage
from ros2_nano_llm.chat.render import Renderer
from ros2_nano_llm.chat.session import ChatSession, TEMPLATE_MARGIN
from ros2_nano_llm.functions import BotFunction
from ros2_nano_llm.llm import NanoLLM
from ros2_nano_llm.settings import Settings
from support.fakes import Chars, Seeing

DATE = BotFunction(name='DATE', func=lambda: 'Monday', docs='Returns the date.')


@pytest.fixture
def history():
    model = NanoLLM(Chars(), 'chars')
    history = ChatHistory(model, chat_template='chat-ml', system_prompt='Be brief.')
    history.append('user', 'Hello.')
    history.append('bot', 'Hi there.')
    history.append('user', 'How are you?')
    yield history
    model.close()


def test_render_returns_a_table_of_positions(history):
    renderer = Renderer(history.template, history.model.backend.tokenize,
                        history.content_input)
    inputs, positions = renderer.render(history.messages)
    spans = [positions.get(m) for m in history]
    assert spans[0].start == 0 and all(a.end == b.start for a, b in zip(spans, spans[1:]))
    prompt = renderer.tokens(history.template.generation_prompt())
    assert len(inputs) == spans[-1].end + len(prompt)  # the generation prompt follows
    # a message's content ends before its turn's closing markup
    bot = spans[2]
    assert bot.start < bot.content_end < bot.end
    assert history.model.detokenize(inputs.keys[bot.content_end - len('Hi there.'):
                                                bot.content_end]) == 'Hi there.'


def test_a_render_writes_nothing_into_messages(history):
    history.render()
    before = [dict(vars(m)) for m in history]
    counts = [m.num_tokens for m in history]
    renderer = Renderer(history.template, history.model.backend.tokenize,
                        history.content_input)
    renderer.render(history.messages[2:])  # a part of the chat, as wrapping tries it
    assert [dict(vars(m)) for m in history] == before
    assert [m.num_tokens for m in history] == counts  # the history's table is unchanged


def test_message_positions_read_the_histories_last_render(history):
    inputs = history.render()
    for message in history:
        span = history.positions.get(message)
        assert (message.start_token, message.num_tokens) == (span.start, span.length)
    assert sum(m.num_tokens for m in history) <= history.num_tokens == len(inputs)
    new = history.append('bot', 'Fine.')
    assert new.num_tokens == 0  # not rendered yet
    history.render()
    assert new.num_tokens > len('Fine.') and new.start_token == history[2].start_token + \
        history[2].num_tokens + history[3].num_tokens


def test_the_history_embeds_images_through_the_backend_once():
    backend = Seeing(rows=5)
    model = NanoLLM(backend, 'seeing')
    try:
        history = ChatHistory(model, chat_template='chat-ml')
        image = history.append('user', image=np.zeros((4, 6, 3), np.uint8))
        history.append('user', 'What is it?')
        assert backend.embedded == 0  # embedded when the chat is rendered, not before
        inputs = history.render()
        assert backend.embedded == 1 and image.embedding.shape == (5, 8)
        assert not inputs.is_text and image.num_tokens >= 5
        history.render()
        assert image.embed() is image.embedding and backend.embedded == 1  # once per message
    finally:
        model.close()
    with pytest.raises(RuntimeError, match='ChatHistory'):
        ChatMessage('user', image=np.zeros((4, 6, 3), np.uint8)).embed()


@pytest.mark.parametrize('template, docs, other', [
    ('chat-ml', 'DATE() - Returns the date.', '<tools>'),
    ('chat-ml-tools', '"name": "DATE"', 'DATE()')])
def test_function_docs_follow_the_templates_tool_syntax(template, docs, other):
    model = NanoLLM(Chars(limit=4096), 'chars')
    config = Settings().updated({'chat_template': template, 'system_prompt': 'Be brief.'})
    chat = ChatSession.build(model, config, functions=[DATE])
    try:
        system = chat.history[0].text
        assert system.startswith('Be brief.\n') and docs in system and other not in system
        # the session's room math counts the same system message the history holds
        room = chat.history.max_tokens - len(chat.history[0].tokens) - TEMPLATE_MARGIN
        assert chat.set_wrap_tokens(10 ** 6) == room
    finally:
        chat.close()

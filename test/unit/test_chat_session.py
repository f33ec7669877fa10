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
The chat session's turn without a model: a NanoLLM over the one-char-per-token fake backend.

What is checked is the library's own turn logic: the prompt joins the chat and the reply is
adopted; a failed reply takes the prompt back; the next turn prefills only its own tokens;
the room math refuses settings that leave no room; turn ids keep increasing.
"""

import pytest
from ros2_nano_llm.chat.session import ChatSession, PromptRejected, TurnIds
from ros2_nano_llm.llm import NanoLLM
from ros2_nano_llm.settings import Settings
from support.fakes import Chars

CONFIG = Settings().updated({'chat_template': 'chat-ml', 'system_prompt': 'Be brief.',
                             'max_new_tokens': 32})


def session(backend=None, config=CONFIG, **kwargs):
    """Return a chat session on a NanoLLM over ``backend`` (default: ``Chars()``)."""
    model = NanoLLM(backend or Chars(), 'chars')
    return ChatSession.build(model, config, **kwargs)


@pytest.fixture
def chat():
    chat = session()
    yield chat
    chat.close()


def answer(chat, text, **options):
    """Run one turn to its end; return (turn, adopted)."""
    turn = chat.start(text, CONFIG, **options)
    turn.reply.wait()
    return turn, chat.finish(turn)


def test_a_turn_adds_the_prompt_and_adopts_the_reply(chat):
    turn, adopted = answer(chat, 'How are you?')
    assert adopted and turn.reply.text == 'Fine, thanks.'
    assert [(m.role, m.content) for m in chat.history][-2:] == [
        ('user', 'How are you?'), ('bot', 'Fine, thanks.')]
    # the cache holds the chat as rendered, and the reply's tokens are kept in it
    assert len(chat.history.kv_cache) >= len(chat.model.tokenize('Fine, thanks.'))


def test_the_next_turn_prefills_only_its_own_tokens(chat):
    answer(chat, 'How are you?')
    cached = len(chat.history.kv_cache)
    answer(chat, 'And now?')
    new = chat.model.backend.prefills[-1]
    assert 0 < new < cached  # the shared prefix was not prefilled again
    # the prompt and its chat-ml markup only (under 80 characters around one turn)
    assert new < len(chat.model.tokenize('And now?')) + 80


def test_a_failed_reply_takes_the_prompt_back():
    chat = session(Chars(fail_at=3))
    try:
        before = [(m.role, m.content) for m in chat.history]
        turn = chat.start('Fail, please.', CONFIG)
        with pytest.raises(RuntimeError, match='accelerator went away'):
            turn.reply.wait()
        assert not chat.finish(turn) and turn.reply.error is not None
        assert [(m.role, m.content) for m in chat.history] == before
    finally:
        chat.close()


def test_a_prompt_that_cannot_be_taken_leaves_the_chat_unchanged(chat):
    before = len(chat.history)
    with pytest.raises(PromptRejected, match='empty prompt'):
        chat.start('   ', CONFIG)
    with pytest.raises(PromptRejected, match='no vision'):
        chat.start('What is this?', CONFIG, image=object())
    too_long = CONFIG.updated({'reply_prefix': 'x' * 60})
    chat.model.backend.config.max_context_len = 100
    with pytest.raises(PromptRejected, match='reply_prefix'):
        chat.start('y' * 20, too_long)
    assert len(chat.history) == before


def test_the_room_math_refuses_settings_that_leave_no_room(chat):
    limit = chat.history.max_tokens
    assert chat.room_problem() == ''
    assert 'system_prompt takes' in chat.room_problem(system_prompt='w' * limit)
    assert 'wrap_tokens=' in chat.room_problem(wrap_tokens=limit * 2)
    assert 'reply_prefix takes' in chat.room_problem(reply_prefix='p' * limit)
    with pytest.raises(ValueError, match='system_prompt takes'):
        session(config=CONFIG.updated({'system_prompt': 'w' * limit}))


def test_wrap_tokens_is_clamped_to_what_fits_beside_the_system_prompt(chat):
    limit = chat.history.max_tokens
    assert chat.set_wrap_tokens(0) == limit // 2
    assert chat.set_wrap_tokens(limit * 10) < limit


def test_turn_ids_keep_increasing_across_sessions():
    ids = TurnIds()
    first = session(turn_ids=ids)
    try:
        assert first.turn_id == 0
        assert answer(first, 'One.')[0].turn_id == 1
    finally:
        first.close()
    ids.skip_past(7)  # a restored chat's last turn
    second = session(turn_ids=ids)
    try:
        assert answer(second, 'Two.')[0].turn_id == 8 == second.turn_id
    finally:
        second.close()


def test_reset_keeps_the_system_prompt(chat):
    answer(chat, 'How are you?')
    chat.reset()
    assert [(m.role, m.content) for m in chat.history] == [('system', 'Be brief.')]

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
One chat and its turn: ``ChatSession`` owns the history, the model and the functions.

A turn is ``start()`` (add the prompt, fit it in the chat, start the reply) and then
``finish()`` (the reply joins the chat, or the prompt is taken back when the reply failed).
The room math (what the system prompt, ``wrap_tokens`` and ``reply_prefix`` leave for the
chat) and the turn ids live here once; the node (``ros/worker.py``) and the terminal chat
(``python3 -m ros2_nano_llm.chat``) both drive a session. No rclpy, and no import of the
top (``llm.py``): the model is handed in, loaded by the program's main.
"""

from dataclasses import dataclass
import threading
from typing import Any, Optional

from ..functions.registry import FunctionRegistry

# Room checks of the settings (see ChatSession.room_problem).
TEMPLATE_MARGIN = 16   # tokens of template markup around the system prompt, at most
MIN_CHAT_SHARE = 4     # the system prompt leaves at least 1/4 of the chat limit for turns


class PromptRejected(ValueError):
    """A prompt the chat cannot take (empty, too long, ...); the history is unchanged."""


class TurnIds:
    """
    Turn ids that keep increasing for the life of the process (and of a saved chat).

    The one place a turn id is kept: ``last`` is the newest id handed out.
    """

    def __init__(self):
        self.last = 0
        self._lock = threading.Lock()

    def __iter__(self) -> 'TurnIds':
        return self

    def __next__(self) -> int:
        with self._lock:
            self.last += 1
            return self.last

    def skip_past(self, turn_id: int) -> None:
        """Make the next id greater than ``turn_id`` (a restored chat's last turn)."""
        with self._lock:
            self.last = max(self.last, int(turn_id))


@dataclass(eq=False)
class Turn:
    """One prompt's reply in progress: ``finish()`` adopts it or takes the prompt back."""

    reply: Any      # its StreamingResponse
    added: int      # history entries the prompt added (taken back if the reply fails)
    turn_id: int


class ChatSession:
    """
    One loaded model and its persistent chat history.

    ``functions`` (bot function records, or None) are the functions the model may call:
    their docs are in the system prompt and every reply runs the calls it makes.
    ``turn_ids`` is shared by the sessions of one program (the node's ids keep increasing
    across cleanup and configure).
    """

    def __init__(self, model: Any, history: Any, functions: Any = None,
                 turn_ids: Optional[TurnIds] = None):
        self.model = model
        self.history = history
        self.functions = functions
        self.turn_ids = turn_ids if turn_ids is not None else TurnIds()

    @classmethod
    def build(cls, model: Any, config: Any, functions: Any = None,
              turn_ids: Optional[TurnIds] = None, **history_options: Any) -> 'ChatSession':
        """
        Build an empty chat on ``model`` as ``config`` (``settings.Settings``) says.

        Raises ValueError when the settings leave no room for the chat; the model is
        closed then (the caller handed it over).
        """
        from .history import ChatHistory
        try:
            # the functions' docs join the system prompt (the model learns what it may call)
            history = ChatHistory(model, chat_template=config.chat_template or None,
                                  system_prompt=config.system_prompt or None,
                                  tools=list(functions) if functions else None,
                                  **history_options)
            session = cls(model, history, functions, turn_ids)
            problem = session.room_problem(config.system_prompt, 0, config.reply_prefix)
            if problem:
                raise ValueError(problem)
            session.set_wrap_tokens(config.wrap_tokens)
        except BaseException:
            model.close()
            raise
        return session

    @property
    def turn_id(self) -> int:
        """Return the id of the newest turn (0 before the first)."""
        return self.turn_ids.last

    def close(self) -> None:
        """Free the model (and with it the chat's KV cache)."""
        if self.model is not None:
            self.model.close()
        self.model = self.history = None

    def reset(self) -> None:
        """Clear the chat; the system prompt (and its cached state) stays."""
        self.history.reset()

    def set_system_prompt(self, text: str) -> None:
        """Use ``text`` as the system prompt ('' for the template's default); resets the chat."""
        with self.history.lock:
            self.history.system_prompt = text or self.history.template.system_prompt

    def set_wrap_tokens(self, wrap_tokens: int) -> int:
        """
        Keep about ``wrap_tokens`` newest tokens when the chat overflows (0: half of it).

        Clamped to what fits beside the system prompt (a larger value could never wrap:
        every prompt would be refused); returns the value used.
        """
        with self.history.lock:
            room = self.history.max_tokens - self._system_tokens(self.history.system_prompt)
            wrap = min(wrap_tokens or self.history.max_tokens // 2, room)
            self.history.wrap_tokens = max(wrap, 1)
            return self.history.wrap_tokens

    def _system_tokens(self, system_prompt: Optional[str]) -> int:
        # the system message as the chat renders it: the prompt plus the functions' docs
        text = system_prompt or self.history.template.system_prompt or ''
        if self.functions:
            text += '\n' + FunctionRegistry(self.functions).generate_docs(
                template=self.history.template)  # as the history writes them
        return len(self.model.tokenize(text)) + TEMPLATE_MARGIN if text else 0

    def room_problem(self, system_prompt: Optional[str] = None, wrap_tokens: Optional[int] = None,
                     reply_prefix: Optional[str] = None) -> str:
        """
        Return why these settings leave no room for the chat, or '' when they fit.

        ``None`` keeps the current value. The chat holds at most ``history.max_tokens``
        (the context minus the room kept for the reply): the system prompt may take at most
        3/4 of it, ``wrap_tokens`` (0: automatic) must fit beside the system prompt, and
        ``reply_prefix`` must take at most half the room kept for the reply.
        """
        history = self.history
        limit, context = history.max_tokens, int(self.model.config.max_context_len)
        with history.lock:
            prompt = history.system_prompt if system_prompt is None else system_prompt
            system = self._system_tokens(prompt)
            most = limit - limit // MIN_CHAT_SHARE
            where = (f'the chat holds at most {limit} tokens (context {context} minus '
                     f'{context - limit} kept for the reply)')
            if system > most:
                return (f"system_prompt takes {system} tokens (with the functions' docs and "
                        f'template), which leaves too little room for the chat: {where}; keep '
                        f'it under {most - TEMPLATE_MARGIN} tokens')
            if wrap_tokens and wrap_tokens > limit - system:
                return (f'wrap_tokens={wrap_tokens} cannot be kept when the chat wraps: {where} '
                        f'and the system prompt takes {system}; use at most '
                        f'{limit - system} (or 0 for half the chat)')
            if reply_prefix:
                tokens = len(self.model.tokenize(reply_prefix))
                room = (context - limit) // 2
                if tokens > room:
                    return (f'reply_prefix takes {tokens} tokens, more than half the '
                            f'{context - limit} tokens kept for the reply (context {context}); '
                            f'keep it under {room} tokens')
        return ''

    def start(self, text: str, config: Any, image: Any = None, max_new_tokens: int = 0,
              tool_choice: str = '') -> Turn:
        """
        Add a user prompt (and ``image``, if any) to the chat and start its reply.

        ``config`` (``settings.Settings``) gives the sampling, ``reply_prefix`` and
        ``tool_choice``; ``max_new_tokens`` and ``tool_choice`` override them when set.
        Returns the ``Turn``. Raises PromptRejected (chat unchanged) when the prompt cannot
        be taken; on any other failure the chat is unchanged too.
        """
        if not text.strip():
            raise PromptRejected('empty prompt: there is nothing to answer')
        history = self.history
        with history.lock:
            if image is not None and not self.model.has_vision:
                raise PromptRejected(f"'{self.model.name}' has no vision: the prompt's image "
                                     'cannot be seen (send the prompt without it)')
            added = 0
            try:
                if image is not None:
                    history.append('user', image=image)
                    added += 1
                history.append('user', text)
                added += 1
                inputs, _ = history.embed_chat()
                self._check_prefix_fits(len(inputs), config.reply_prefix)
                sampling = config.sampling()
                if max_new_tokens:
                    sampling['max_new_tokens'] = max_new_tokens
                choice = tool_choice or config.tool_choice
                # calls in the reply run as it streams; results use the chat's template
                reply = self.model.generate(
                    inputs, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                    functions=self.functions, template=history.template,
                    reply_prefix=config.reply_prefix or None,
                    tool_choice=None if choice == 'auto' else choice,
                    max_calls=config.max_calls_per_turn, **sampling)
            except ValueError as error:
                self._undo(added)
                raise PromptRejected(str(error)) from error
            except BaseException:
                self._undo(added)
                raise
        return Turn(reply, added, next(self.turn_ids))

    def _check_prefix_fits(self, new_tokens: int, reply_prefix: str) -> None:
        # the prefix is part of the reply: it must fit the context after the prompt
        if not reply_prefix:
            return
        context = int(self.model.config.max_context_len)
        prefix = len(self.model.tokenize(reply_prefix))
        if len(self.history.kv_cache) + new_tokens + prefix >= context:
            raise ValueError(f'reply_prefix ({prefix} tokens) does not fit after the chat in '
                             f'the context of {context} tokens; shorten reply_prefix')

    def finish(self, turn: Turn, failed: bool = False) -> bool:
        """
        Add the ended reply (complete or stopped) to the chat as the bot's turn.

        A failed reply (``failed``, or one that ended in error or not at all) is not added;
        the prompt is taken back so the chat stays as it was. Returns True if it was added.
        """
        reply = turn.reply
        with self.history.lock:
            if failed or reply.record.error is not None or not reply.done:
                self._undo(turn.added)
                return False
            self.history.append('bot', reply)
            return True

    def _undo(self, added: int) -> None:
        if added:
            self.history.pop(added)

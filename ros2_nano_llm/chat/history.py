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
ChatHistory: the messages of one chat, its template and the KV cache that holds it.

Before each reply the chat is rendered to keys and compared with the keys the KV cache
holds; the cache is cropped to their common prefix and only the rest is prefilled. That one
rule keeps the cache exact after appending, removing, wrapping or resetting messages.
"""

import html
import os
import re
import threading
from typing import Any, Dict, List, Optional, Tuple, Union

from .message import ChatMessage, normalize_role
from .render import Positions, Renderer
from .stream import StreamingResponse
from .templates import ChatTemplate, template_for
from ..models.base import Inputs, KVCache

REPLY_RESERVE = 256  # tokens kept free for the reply when max_tokens is not given


class ChatHistory:
    """
    Multimodal chat history, indexable like a list of ``ChatMessage``.

    ``kv_cache`` is the chat's KV cache; ``positions`` the table of where each message sat
    in the last render (``render.Positions``: a message's ``start_token`` and
    ``num_tokens`` read it).
    """

    def __init__(self, model: Any, chat_template: Union[str, dict, ChatTemplate, None] = None,
                 system_prompt: Optional[str] = None, max_tokens: Optional[int] = None,
                 wrap_tokens: Optional[int] = None, tools: Any = None,
                 print_stats: bool = False, **kwargs):
        """
        Start a chat with ``model`` (NanoLLM's arguments, plus the limits).

        ``chat_template`` is a built-in name, a JSON file, a dict or a ``ChatTemplate``
        (default: the model's); ``system_prompt`` replaces the template's. ``max_tokens``
        is the most the chat may take (default: the context less room for a reply) and
        ``wrap_tokens`` how much of it is kept when it overflows (default: what fits
        half of it). ``tools`` adds function docs to the system prompt: ``True`` for every
        enabled ``BotFunctions()``, or a registry or list of functions. ``print_stats``
        (or ``debug``) is kept as an attribute, as NanoLLM does, for the caller to use.
        """
        self.model = model
        cfg = model.config
        self.template = template_for(cfg, chat_template)
        self._system_prompt = system_prompt if system_prompt is not None \
            else self.template.system_prompt
        self.max_tokens = max_tokens or max(cfg.max_context_len - REPLY_RESERVE,
                                            cfg.max_context_len // 2)
        self.wrap_tokens = wrap_tokens  # None or 0: automatic (see _default_wrap)
        self.tools = tools
        self.print_stats = bool(print_stats or kwargs.pop('debug', False))
        if kwargs:
            raise TypeError(f'ChatHistory got unexpected arguments: {sorted(kwargs)}')
        self.lock = threading.RLock()
        self.messages: List[ChatMessage] = []
        self.kv_cache: KVCache = model.new_cache()
        # the template's own markup is control tokens; message text never is
        self._renderer = Renderer(self.template, model.backend.tokenize, self.content_input)
        self._keys: List[Any] = []
        self.positions = Positions()
        self.reset()

    # ---- list behaviour ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.messages)

    def __getitem__(self, index: Union[int, slice]) -> Union[ChatMessage, List[ChatMessage]]:
        return self.messages[index]

    def __iter__(self):
        return iter(list(self.messages))

    def __delitem__(self, index: Union[int, slice]) -> None:
        if isinstance(index, slice):
            ids = range(len(self.messages))[index]
            if ids.step not in (1, None) and len(ids) > 1:
                raise ValueError('del history[a:b:step] supports step 1 only')
            if len(ids):
                self.remove(ids[0], ids[-1] + 1)
        else:
            self.remove(index)

    # ---- adding ------------------------------------------------------------------------
    def append(self, role: str = 'user', msg: Any = None, **kwargs) -> ChatMessage:
        """
        Add an entry: text, an image (``image=``), a ``ChatMessage`` or a finished reply.

        ``history.append('bot', reply)`` adopts the reply's generated tokens and KV cache.
        """
        with self.lock:
            if isinstance(msg, StreamingResponse):
                msg.wait()
                # the cache the reply extended: this chat's own, or a fresh one of generate()
                if msg.record.kv_cache is not None:
                    self.kv_cache = msg.record.kv_cache
                messages = self._reply_messages(role, msg, **kwargs)
                for message in messages[:-1]:
                    self._check(message)
                    self.messages.append(message)
                message = messages[-1]
            elif isinstance(msg, ChatMessage):
                message = msg
            elif isinstance(msg, str) and ChatMessage.content_type(msg) == 'image' and \
                    os.path.isfile(os.path.expanduser(msg.strip())):
                message = ChatMessage(role, image=os.path.expanduser(msg.strip()), **kwargs)
            elif msg is None or isinstance(msg, str):
                if msg is not None:
                    kwargs['text'] = msg
                message = ChatMessage(role, **kwargs)
            else:
                kwargs['image' if ChatMessage.content_type(msg) == 'image' else 'text'] = msg
                message = ChatMessage(role, **kwargs)
            self._check(message)
            message.history = self
            self.messages.append(message)
            self.reindex()
            return message

    def _reply_messages(self, role: str, reply: StreamingResponse, **kwargs) -> List[ChatMessage]:
        # a reply that called template-style functions holds whole tool_response turns:
        # split it so the chat shows them as their own entries (same tokens, same cache)
        out, start = [], 0
        for call in sorted(reply.record.calls, key=lambda c: c.token_start):
            if not call.turn:
                continue  # inline results stay in the bot's text
            out.append(self._bot_message(role, reply.tokens[start:call.token_start], **kwargs))
            out.append(ChatMessage('tool_response', text=call.content))
            start = call.token_end
        out.append(self._bot_message(role, reply.tokens[start:], **kwargs))
        return out

    def _bot_message(self, role: str, tokens: List[int], **kwargs) -> ChatMessage:
        return ChatMessage(role, text=self.model.detokenize(tokens), tokens=tokens, **kwargs)

    def _check(self, message: ChatMessage) -> None:
        message.role = normalize_role(message.role)
        if not self.template.has_role(message.role):
            raise ValueError(f"the '{self.template.name}' template has no '{message.role}' role")
        if message.type == 'image' and not self.model.has_vision:
            raise ValueError(f'{self.model.name} is a text-only model and cannot take images')
        if message.type == 'text' and message.role == 'user' and not message.content.strip():
            raise ValueError('empty prompt: the message has no text')
        if message.type == 'text' and message.tokens is None:
            message.tokens = self.tokenize_text(message.content)
            if len(message.tokens) > self.max_tokens:
                raise ValueError(f'message of {len(message.tokens)} tokens is longer than the '
                                 f'chat allows ({self.max_tokens}); shorten it')

    def add_system_prompt(self, system_prompt: Optional[str] = None,
                          use_cache: bool = True) -> Optional[ChatMessage]:
        """Add the system message (with tool docs when tools are enabled) at the start."""
        if system_prompt is not None:
            self._system_prompt = system_prompt
        if not self.template.has_role('system') or not self._system_prompt:
            return None
        text = self._system_prompt
        tools = self.tool_functions()
        if tools:
            from ..functions.registry import FunctionRegistry
            # the docs (and their prologue) in the template's own tool-call syntax
            text = text + '\n' + FunctionRegistry().generate_docs(functions=tools,
                                                                  template=self.template)
        message = ChatMessage('system', text=text, use_cache=use_cache)
        message.history = self
        message.tokens = self.tokenize_text(text)
        if self.messages and self.messages[0].role == 'system':
            self.messages[0] = message
        else:
            self.messages.insert(0, message)
        self.reindex()
        return message

    def tokenize_text(self, text: str) -> List[int]:
        """
        Return the token ids of chat content (user text, captions, function results).

        Content is always plain text: control-token text such as ``<|im_end|>`` in it
        becomes ordinary tokens, so nothing a user or a tool writes can close a turn or
        open a system turn. Only the template's own markup is tokenized with its
        special tokens (see ``render.Renderer``).
        """
        return list(self.model.backend.tokenize(text, special=False))

    def content_input(self, message: ChatMessage) -> Any:
        """
        Return ``message``'s content as model input: plain-text token ids, or an embedding.

        Computed once per message (kept in its ``tokens`` or ``embedding``). Text is
        tokenized as plain text (``tokenize_text``), so it can never act as template
        markup; an image is embedded by the model's backend.
        """
        if message.type == 'text':
            if message.tokens is None:
                message.tokens = self.tokenize_text(message.content)
            return message.tokens
        if message.type == 'image':
            if message.embedding is None:
                message.embedding = self.model.backend.embed_image(message.content)
            return message.embedding
        raise ValueError(f"messages of type '{message.type}' cannot be embedded by this model")

    def tool_functions(self) -> List[Any]:
        """Return the functions ``tools`` names (``True``: every enabled ``BotFunctions()``)."""
        if self.tools is None or self.tools is False:
            return []
        from ..functions.registry import BotFunctions
        if self.tools is True:
            return list(BotFunctions())
        return BotFunctions.records(self.tools)

    @property
    def system_prompt(self) -> Optional[str]:
        """Return the system prompt (the hidden instruction at the start of the chat)."""
        return self._system_prompt

    @system_prompt.setter
    def system_prompt(self, text: Optional[str]) -> None:
        with self.lock:
            self._system_prompt = text
            self.reset()

    # ---- removing ----------------------------------------------------------------------
    def pop(self, count: int = 1) -> List[ChatMessage]:
        """Remove the last ``count`` messages; return them."""
        count = min(count, len(self.messages))
        if count <= 0:
            return []
        removed = self.messages[-count:]
        self.remove(len(self.messages) - count, len(self.messages))
        return removed

    def remove(self, start: int, stop: Optional[int] = None) -> None:
        """
        Remove entries ``start`` (inclusive) to ``stop`` (exclusive); ``stop=None`` removes one.

        ``remove(-2, 0)`` removes the last two and ``remove(1, 0)`` all from entry 1 on
        (a ``stop`` of 0 or less counts from the end). The KV cache is cut where the first removed
        entry began; what follows is prefilled again on the next reply.
        """
        with self.lock:
            n = len(self.messages)
            if stop is None:
                stop = start + 1
            if start < 0:
                start += n
            if stop <= 0:
                stop += n  # NanoLLM: remove(1, 0) removes from 1 to the end
            if not (0 <= start < n) or not (start < stop <= n):
                raise IndexError(f'cannot remove entries {start}:{stop} of {n}')
            del self.messages[start:stop]
            self.reindex()
            self._sync_cache()

    def reset(self, system_prompt: Union[bool, str] = True, use_cache: bool = True,
              wrap_tokens: Optional[int] = None) -> None:
        """
        Clear the chat, then add the system prompt; the cached system prompt is reused.

        ``system_prompt`` is True (add the system prompt), False (leave it out) or a new
        system prompt text to use from now on. With ``wrap_tokens`` the newest entries (up
        to that many tokens, from a user turn) are kept instead.
        """
        with self.lock:
            if isinstance(system_prompt, str):
                self._system_prompt = system_prompt
            if wrap_tokens:
                keep = self.find_wrap_entry(wrap_tokens)
                if keep is not None:
                    del self.messages[self._head():keep]
                self.reindex()
                self._sync_cache()
                return
            system = self.messages[0] if self.messages and self.messages[0].role == 'system' \
                else None
            self.messages = []
            if system_prompt:
                self.add_system_prompt()
                if system is not None and self.messages and \
                        system.tokens == self.messages[0].tokens:
                    self.messages[0] = system  # same prompt: keep the message and its cache
            self.reindex()
            if use_cache:
                self._sync_cache()
            else:
                self.kv_cache.reset()

    # ---- rendering and the cache -------------------------------------------------------
    def reindex(self) -> None:
        """Relink ``index``/``prev``/``next`` of every message after a change."""
        for i, msg in enumerate(self.messages):
            msg.index = i
            msg.history = self
            msg.prev = self.messages[i - 1] if i > 0 else None
            msg.next = self.messages[i + 1] if i + 1 < len(self.messages) else None

    def _sync_cache(self) -> None:
        # cut the cache where the chat now differs from it; what follows is prefilled later
        self.kv_cache.crop(self.kv_cache.common_prefix(self._render(False).keys))

    def render(self, add_generation_prompt: bool = True) -> Inputs:
        """
        Return the whole chat as model input, updating the table of ``positions``.

        Each message's ``start_token`` and ``num_tokens`` (and ``num_tokens`` of the
        history) reflect this render; the KV cache is not touched.
        """
        with self.lock:
            return self._render(add_generation_prompt)

    def _render(self, add_generation_prompt: bool = True) -> Inputs:
        inputs, self.positions = self._renderer.render(self.messages, add_generation_prompt)
        self._keys = inputs.keys
        return inputs

    def embed_chat(self, use_cache: bool = True, max_tokens: Optional[int] = None,
                   wrap_tokens: Optional[int] = None, **kwargs) -> Tuple[Any, int]:
        """
        Return ``(new_input, position)``: what the KV cache lacks, and where it starts.

        ``new_input`` is a token-id array for text chats, or an ``Inputs`` when images are
        in it; pass it to ``model.generate(new_input, kv_cache=history.kv_cache)``. With
        ``use_cache=False`` the whole chat is returned and the cache emptied. When the chat
        passes ``max_tokens``, it wraps to the newest ``wrap_tokens`` from a user turn.
        """
        with self.lock:
            inputs = self._render()
            if len(inputs) > (max_tokens or self.max_tokens):
                inputs = self._wrap(inputs, max_tokens or self.max_tokens,
                                    wrap_tokens or self._default_wrap(max_tokens))
            position = self.kv_cache.common_prefix(inputs.keys) if use_cache else 0
            if position == len(inputs):
                position -= 1  # the model needs at least one new position to predict from
            self.kv_cache.crop(position)
            new = inputs.slice_from(position).bind(self.kv_cache)  # generate() checks it
            if new.is_text:
                return new.token_array(), position
            return new, position

    def _head(self) -> int:
        # entries before this index are never wrapped away (the system prompt)
        return 1 if self.messages and self.messages[0].role == 'system' else 0

    def _default_wrap(self, max_tokens: Optional[int]) -> int:
        # wrap_tokens when set, else half of what the chat may take after the system
        # prompt, so the kept turns and a new one fit the max_tokens in effect
        if self.wrap_tokens:
            return self.wrap_tokens
        limit = max_tokens or self.max_tokens
        head = self.positions.length(self.messages[0]) if self._head() else 0
        return max((limit - head) // 2, 1)

    def _wrap(self, inputs: Inputs, max_tokens: int, wrap_tokens: int) -> Inputs:
        # decide before changing anything: a chat that cannot fit stays exactly as it was
        head = self._head()

        def kept_length(keep: Optional[int]) -> int:
            kept = self.messages[:head] + self.messages[keep if keep is not None else head:]
            return len(self._renderer.render(kept).inputs)

        keep = self.find_wrap_entry(wrap_tokens)
        if keep is None or kept_length(keep) > max_tokens:
            keep = self.find_wrap_entry(0)  # wrap_tokens keeps too much: the newest turn only
            if keep is None or kept_length(keep) > max_tokens:
                newest = kept_length(keep)
                with_system = ' with the system prompt' if head else ''
                raise ValueError(f'the newest turn alone ({newest} tokens{with_system}) '
                                 f'exceeds max_tokens={max_tokens}; shorten the prompt')
        del self.messages[head:keep]
        self.reindex()
        return self._render()

    def cached_tokens(self) -> int:
        """Return how many positions of the chat (as last rendered) the KV cache holds."""
        return self.kv_cache.common_prefix(self._keys)

    def holds(self, message: ChatMessage) -> bool:
        """Return True when the KV cache holds ``message``'s content (``message.cached``)."""
        with self.lock:
            if not any(m is message for m in self.messages):
                return False
            inputs, positions = self._renderer.render(self.messages, add_generation_prompt=False)
            span = positions.get(message)
            return span.content_end > span.start and \
                self.kv_cache.common_prefix(inputs.keys) >= span.content_end

    @property
    def num_tokens(self) -> int:
        """Return the tokens the chat takes (as of the last render)."""
        return len(self._keys)

    @property
    def stop_tokens(self) -> List[str]:
        """Return the template's stop strings (pass them to ``generate``)."""
        return list(self.template.stop)

    def find_wrap_entry(self, wrap_tokens: int) -> Optional[int]:
        """
        Return the oldest user-turn index from which the chat fits in ``wrap_tokens``.

        Returns None when the whole chat (after the system prompt) fits already. When even
        the newest user turn is longer, that turn's index is returned.
        """
        positions = self._renderer.render(self.messages, add_generation_prompt=False).positions
        head = self._head()
        if sum(positions.length(m) for m in self.messages[head:]) <= wrap_tokens:
            return None
        total, entry = 0, None
        for i in range(len(self.messages) - 1, head - 1, -1):
            total += positions.length(self.messages[i])
            turn_start = self.messages[i].role == 'user' and (
                i == head or self.messages[i - 1].role != 'user')
            if turn_start and (total <= wrap_tokens or entry is None):
                entry = i
            if total > wrap_tokens and entry is not None:
                break
        return entry if entry is not None else len(self.messages)

    def turn(self, role: str = 'user') -> bool:
        """Return True if it is ``role``'s turn to speak."""
        role = normalize_role(role)
        if role == 'system':
            return not self.messages
        last = next((m.role for m in reversed(self.messages) if m.role != 'system'), None)
        if role == 'user':
            return last in (None, 'bot', 'tool_response')
        return last is not None and last != role

    def run_tools(self, message: Union[ChatMessage, str], tools: Any = None,
                  append: bool = True) -> Optional[List[str]]:
        """
        Run the function calls in ``message``'s text; return their results.

        With ``append`` the results join the chat: one ``tool_response`` entry per
        template-style call, and python-style results as one ``tool_response`` entry too.
        """
        from ..functions.parsing import format_result
        from ..functions.registry import BotFunctions
        text = message.text if isinstance(message, ChatMessage) else message
        functions = BotFunctions.records(tools) if tools else (
            self.tool_functions() or BotFunctions())
        pairs = BotFunctions.run_calls(text or '', functions)
        if not pairs:
            return None
        if append and self.template.has_role('tool_response'):
            for call, result in pairs:
                content = format_result(call, result, self.template)
                self.append('tool_response', content.removeprefix(' -> '))
        return [result for _, result in pairs]

    # ---- serialization -----------------------------------------------------------------
    def to_list(self, messages: Optional[List[ChatMessage]] = None,
                html: bool = False) -> List[Dict[str, Any]]:
        """Return the chat as a list of plain dicts (role, type, text; tokens for bot turns)."""
        out = []
        for msg in self.messages if messages is None else messages:
            entry: Dict[str, Any] = {'role': msg.role, 'type': msg.type}
            text = msg.describe()
            entry['text'] = text
            if msg.type == 'image' and msg.source:
                entry['image'] = msg.source
            if msg.role == 'bot' and msg.tokens is not None:
                entry['tokens'] = list(msg.tokens)
            out.append(entry)
        return self.to_html(out) if html else out

    def to_html(self, messages: Optional[List[Any]] = None) -> List[Dict[str, Any]]:
        """
        Return the chat as ``to_list()`` dicts with each text made safe HTML (``format``).

        ``messages`` may be ChatMessages or ``to_list()`` dicts (default: the whole chat).
        """
        if messages is None or (messages and isinstance(messages[0], ChatMessage)):
            messages = self.to_list(messages)
        out = []
        for entry in messages:
            entry = dict(entry)
            if entry.get('type', 'text') == 'text' and isinstance(entry.get('text'), str):
                entry['text'] = self.format(entry['text'])
            out.append(entry)
        return out

    def from_list(self, entries: List[Dict[str, Any]]) -> None:
        """Replace the chat with entries from ``to_list()`` (bot tokens restored exactly)."""
        with self.lock:
            self.messages = []
            for entry in entries:
                role = entry.get('role', 'user')
                if entry.get('type', 'text') == 'image':
                    if not entry.get('image'):
                        raise ValueError('an image entry needs its file path to be restored')
                    message = ChatMessage(role, image=entry['image'])
                else:
                    message = ChatMessage(role, text=entry.get('text', ''),
                                          tokens=entry.get('tokens'))
                if role == 'system':
                    self._system_prompt = message.content
                else:
                    self._check(message)
                message.history = self
                self.messages.append(message)
            self.reindex()

    @staticmethod
    def format(text: str) -> str:  # noqa: A003 - NanoLLM's name
        r"""
        Return ``text`` as HTML: escaped, code in <code>, newlines as <br/>.

        A fenced block (```` ```lang\ncode``` ```` or ```` ```code``` ````) becomes
        ``<pre><code>``; the language tag counts only when a newline follows it. Inline
        `` `code` `` becomes ``<code>code</code>``.
        """
        parts = re.split(r'```(?:[\w+-]*\n)?(.*?)```', text, flags=re.S)
        out = []
        for i, part in enumerate(parts):
            if i % 2:
                out.append(f'<pre><code>{html.escape(part)}</code></pre>')
                continue
            pieces = re.split(r'`([^`\n]+)`', part)
            for j, piece in enumerate(pieces):
                escaped = html.escape(piece)
                out.append(f'<code>{escaped}</code>' if j % 2 else escaped.replace('\n', '<br/>'))
        return ''.join(out)

    # ---- files (chat/storage.py) ---------------------------------------------------------
    def save(self, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
        """Save the chat to a JSON file, crash-safely (docs/history-format.md)."""
        from .storage import save
        save(self, path, extra)

    def load(self, path: str) -> Dict[str, Any]:
        """Replace the chat with the one saved in ``path``; return the file's ``extra``."""
        from .storage import load
        return load(self, path)

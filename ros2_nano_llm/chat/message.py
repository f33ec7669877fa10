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
"""ChatMessage: one entry of a chat (text, image, or a tool result)."""

import itertools
from typing import Any, List, Optional, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # render.py imports this module
    from .render import Span

ROLE_ALIASES = {'assistant': 'bot', 'tool': 'tool_response', 'function': 'tool_response'}
_uids = itertools.count()


def normalize_role(role: str) -> str:
    """Map role aliases (``assistant``, ``tool``) onto the template's role names."""
    if not isinstance(role, str) or not role:
        raise ValueError(f'role must be a non-empty string, got {role!r}')
    return ROLE_ALIASES.get(role, role)


class ChatMessage:
    """
    A chat entry: ``text``, an ``image``, or other content passed by keyword.

    ``tokens`` (content token ids) and ``embedding`` may be given when already known: a bot
    reply keeps the exact ids the model generated, so it is never re-tokenized.
    """

    def __init__(self, role: str = 'user', text: Optional[str] = None, image: Any = None,
                 history: Any = None, use_cache: bool = False, tokens: Optional[List[int]] = None,
                 embedding: Any = None, **kwargs):
        self.role = normalize_role(role)
        self.history = history
        self.use_cache = use_cache
        self.uid = next(_uids)
        self.index: Optional[int] = None
        self.prev: Optional['ChatMessage'] = None
        self.next: Optional['ChatMessage'] = None
        self.source: Optional[str] = None
        if text is not None and image is not None:
            raise ValueError('a ChatMessage holds text or an image, not both: append them in turn')
        if image is not None:
            from ..vision.convert import to_rgb_array
            self.source = image if isinstance(image, str) else None
            self.type, self.content = 'image', to_rgb_array(image)
        elif text is not None:
            if not isinstance(text, str):
                raise ValueError(f'text must be a string, got {type(text).__name__}')
            self.type, self.content = 'text', text
        elif kwargs:
            if len(kwargs) != 1:
                raise ValueError(f'one kind of content per message, got {sorted(kwargs)}')
            (self.type, self.content), = kwargs.items()
            if self.type == 'image':
                raise ValueError('pass images with image=')
        else:
            raise ValueError('a ChatMessage needs text, an image or other content')
        self.tokens: Optional[List[int]] = [int(t) for t in tokens] if tokens is not None \
            else None
        self.embedding = embedding

    @staticmethod
    def content_type(content: Any) -> Optional[str]:
        """
        Guess the type of ``content``: 'image' or 'text', or None when it is neither.

        A string naming an image file (by its extension) is 'image', other strings 'text'.
        """
        from ..vision.convert import is_image
        if isinstance(content, str):
            return 'image' if is_image(content) else 'text'
        if is_image(content):
            return 'image'
        return None

    def is_type(self, type: str) -> bool:  # noqa: A002 - NanoLLM's name
        """Return True if this message holds content of ``type`` ('text', 'image', ...)."""
        return self.type == type

    @property
    def text(self) -> Optional[str]:
        """Return the text of a text message (None for other types)."""
        return self.content if self.type == 'text' else None

    @property
    def template(self) -> Optional[str]:
        """
        Return this message with its role template applied, as text (NanoLLM's ``template``).

        The template's text around the message depends on its neighbours (a run of one
        role shares one prefix and suffix), so it needs the message's chat. None for a
        message outside a chat, one the template does not render, or a non-text message.
        """
        if self.history is None or self.index is None or self.type != 'text':
            return None
        roles = [m.role for m in self.history.messages]
        affix = self.history.template.affixes(roles)[self.index]
        if affix is None:
            return None
        return affix[0] + self.content + affix[1]

    @property
    def num_tokens(self) -> int:
        """
        Return the tokens this message takes in the chat (valid after ``embed_chat()``).

        Read from the table of the history's last render (``ChatHistory.positions``); 0
        for a message that render did not hold.
        """
        span = self._span()
        return span.length if span is not None else 0

    @property
    def start_token(self) -> int:
        """Return the position at which this message begins in the chat (as last rendered)."""
        span = self._span()
        return span.start if span is not None else 0

    def _span(self) -> Optional['Span']:
        # this message's place in the history's last render (None outside a chat)
        return self.history.positions.get(self) if self.history is not None else None

    @property
    def cached(self) -> bool:
        """
        Return True when the history's KV cache holds this message's content.

        A reply appended from ``generate()`` is cached as soon as it is appended (its
        tokens are in the cache the reply filled); the template's end of its turn follows
        with the next prompt.
        """
        if self.history is None or self.index is None:
            return False
        return self.history.holds(self)

    def embed(self, return_tensors: str = 'np', **kwargs) -> Any:
        """
        Apply the role template, tokenize, and return this message's part of the chat.

        For text: the token ids of :attr:`template` as the chat renders them (an int64
        array, or a list with ``return_tensors='list'``); ``tokens`` holds the content's
        ids and ``num_tokens`` the templated length. For an image: its embedding. The
        history tokenizes and embeds (``ChatHistory.content_input``).
        """
        if self.history is None:
            raise RuntimeError('embed() needs the message to belong to a ChatHistory')
        inputs = self.history.render(add_generation_prompt=False)
        if self.type != 'text':
            return self.history.content_input(self)
        ids = [int(k) for k in inputs.keys[self.start_token:self.start_token + self.num_tokens]]
        return np.asarray(ids, dtype=np.int64) if return_tensors == 'np' else ids

    def describe(self) -> str:
        """Return a one-line text form (images as ``<image WxH>``)."""
        if self.type == 'text':
            return self.content
        if self.type == 'image':
            h, w = self.content.shape[:2]
            return f'<image {w}x{h}>'
        return f'<{self.type}>'

    def __repr__(self) -> str:
        return f'ChatMessage(role={self.role!r}, {self.type}={self.describe()[:40]!r})'

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
from typing import Any, List, Optional

import numpy as np

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
        self.start_token = 0
        self._num_tokens = 0
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
    def content_type(content: Any) -> str:
        """Guess the type of ``content``: 'text' for strings, else 'image' if it is one."""
        from ..vision.convert import is_image
        if isinstance(content, str):
            return 'image' if is_image(content) else 'text'
        if is_image(content):
            return 'image'
        raise ValueError(f'cannot tell what kind of content a {type(content).__name__} is')

    def is_type(self, type: str) -> bool:  # noqa: A002 - NanoLLM's name
        """Return True if this message holds content of ``type`` ('text', 'image', ...)."""
        return self.type == type

    @property
    def text(self) -> Optional[str]:
        """Return the text of a text message (None for other types)."""
        return self.content if self.type == 'text' else None

    @property
    def template(self) -> Optional[str]:
        """Return this role's template string from the history's chat template."""
        if self.history is None:
            return None
        return self.history.template.roles.get(self.role)

    @property
    def num_tokens(self) -> int:
        """Return the tokens this message takes in the chat (valid after ``embed_chat()``)."""
        return self._num_tokens

    @property
    def cached(self) -> bool:
        """Return True when this whole message is held in the history's KV cache."""
        return self.history is not None and self.history.cached_tokens() >= \
            self.start_token + self._num_tokens > 0

    def embed(self, return_tensors: str = 'np', **kwargs) -> Any:
        """Return the content as token ids (text) or an embedding (image); computed once."""
        if self.history is None:
            raise RuntimeError('embed() needs the message to belong to a ChatHistory')
        model = self.history.model
        if self.type == 'text':
            if self.tokens is None:
                self.tokens = model.backend.tokenize(self.content)
            return np.asarray(self.tokens, dtype=np.int64) if return_tensors == 'np' \
                else self.tokens
        if self.type == 'image':
            if self.embedding is None:
                self.embedding = model.embed_image(self.content)
            return self.embedding
        raise ValueError(f"messages of type '{self.type}' cannot be embedded by this model")

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

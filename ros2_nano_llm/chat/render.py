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
Render chat messages into model input: template text around each message's content.

The template decides the text around each message (``ChatTemplate.affixes``): consecutive
messages of one role form one turn (an image then its question), so the role's prefix goes
before the first of them and its suffix after the last. A render returns the input and a
table of :class:`Positions`: where each message starts, where its content ends and how many
positions it takes. Messages are not written to; the history keeps the table of its last
render.

Only the template's own text is tokenized with special tokens parsed (``special=True``);
message content (user text, captions, function results) comes from the ``content``
function the history hands in, which tokenizes text as plain text, so text such as
``<|im_end|>`` in a prompt can never close a turn.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

from .message import ChatMessage
from .templates import ChatTemplate
from ..models.base import Inputs


@dataclass(frozen=True)
class Span:
    """Where one message sits in a render: positions ``start`` to ``end`` (exclusive)."""

    start: int
    content_end: int  # where its content ends (a reply's tokens end here; its turn's end follows)
    end: int

    @property
    def length(self) -> int:
        """Return how many positions the message takes, template text included."""
        return self.end - self.start


class Positions:
    """The table of one render: the :class:`Span` of each rendered message."""

    def __init__(self):
        """Start an empty table."""
        self._spans: Dict[int, Span] = {}

    def add(self, message: ChatMessage, span: Span) -> None:
        """Record where ``message`` sits."""
        self._spans[message.uid] = span

    def get(self, message: ChatMessage) -> Optional[Span]:
        """Return the span of ``message``, or None when the render did not hold it."""
        return self._spans.get(message.uid)

    def length(self, message: ChatMessage) -> int:
        """Return the positions ``message`` takes (0 when the render did not hold it)."""
        span = self.get(message)
        return span.length if span is not None else 0


class Rendering(NamedTuple):
    """A render: the model input and the positions of its messages."""

    inputs: Inputs
    positions: Positions


class Renderer:
    """Turns messages into ``Inputs``, tokenizing each template piece once."""

    def __init__(self, template: ChatTemplate, tokenize: Callable[..., List[int]],
                 content: Callable[[ChatMessage], Any]):
        """
        Use ``template``; ``tokenize(text, special=True)`` tokenizes its markup.

        ``content(message)`` returns a message's content as model input: plain-text token
        ids, or an image's embedding (the history's ``content_input``).
        """
        self.template = template
        self._tokenize = tokenize
        self._content = content
        self._pieces: Dict[str, List[int]] = {}

    def tokens(self, text: str) -> List[int]:
        """Return the token ids of a template piece, control tokens parsed (memoized)."""
        if text not in self._pieces:
            self._pieces[text] = list(self._tokenize(text, special=True)) if text else []
        return self._pieces[text]

    def render(self, messages: Sequence[ChatMessage],
               add_generation_prompt: bool = True) -> Rendering:
        """Return the whole chat as ``Inputs`` and the table of where each message sits."""
        out, positions = Inputs(), Positions()
        affixes = self.template.affixes([m.role for m in messages])
        for msg, affix in zip(messages, affixes):
            start = len(out)
            if affix is None:  # e.g. a system prompt on a template without a system role
                positions.add(msg, Span(start, start, start))
                continue
            prefix, suffix = affix
            out.add_tokens(self.tokens(prefix))
            content = self._content(msg)
            if msg.type == 'image':
                out.add_embedding(content, key=('image', msg.uid))
                if not suffix:  # the turn goes on (its question follows the image)
                    out.add_tokens(self.tokens('\n'))
            else:
                out.add_tokens(content)
            content_end = len(out)
            out.add_tokens(self.tokens(suffix))
            positions.add(msg, Span(start, content_end, len(out)))
        if add_generation_prompt and messages and messages[-1].role != 'bot':
            out.add_tokens(self.tokens(self.template.generation_prompt()))
        return Rendering(out, positions)

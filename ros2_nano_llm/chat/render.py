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
before the first of them and its suffix after the last. Each message records where it
starts and how many positions it takes.

Only the template's own text is tokenized with special tokens parsed (``special=True``);
message content (user text, captions, function results) comes from
``ChatMessage.content_input()``, which tokenizes it as plain text, so text such as
``<|im_end|>`` in a prompt can never close a turn.
"""

from typing import Callable, Dict, List, Sequence

from .message import ChatMessage
from .templates import ChatTemplate
from ..models.base import Inputs


class Renderer:
    """Turns messages into ``Inputs``, tokenizing each template piece once."""

    def __init__(self, template: ChatTemplate, tokenize: Callable[..., List[int]]):
        """Use ``template``; ``tokenize(text, special=True)`` tokenizes its markup."""
        self.template = template
        self._tokenize = tokenize
        self._pieces: Dict[str, List[int]] = {}

    def tokens(self, text: str) -> List[int]:
        """Return the token ids of a template piece, control tokens parsed (memoized)."""
        if text not in self._pieces:
            self._pieces[text] = list(self._tokenize(text, special=True)) if text else []
        return self._pieces[text]

    def render(self, messages: Sequence[ChatMessage],
               add_generation_prompt: bool = True) -> Inputs:
        """Return the whole chat as ``Inputs``; sets each message's start and length."""
        out = Inputs()
        affixes = self.template.affixes([m.role for m in messages])
        for msg, affix in zip(messages, affixes):
            msg.start_token = len(out)
            if affix is None:  # e.g. a system prompt on a template without a system role
                msg._num_tokens = msg._content_end = 0
                continue
            prefix, suffix = affix
            out.add_tokens(self.tokens(prefix))
            content = msg.content_input()
            if msg.type == 'image':
                out.add_embedding(content, key=('image', msg.uid))
                if not suffix:  # the turn goes on (its question follows the image)
                    out.add_tokens(self.tokens('\n'))
            else:
                out.add_tokens(content)
            msg._content_end = len(out)  # a reply's tokens end here; its turn's end follows
            out.add_tokens(self.tokens(suffix))
            msg._num_tokens = len(out) - msg.start_token
        if add_generation_prompt and messages and messages[-1].role != 'bot':
            out.add_tokens(self.tokens(self.template.generation_prompt()))
        return out

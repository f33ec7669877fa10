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
Run the bot functions a reply calls while it streams, and feed their results back.

The generation loop calls the hook after each token. When a call completes, the hook runs
it and returns the token ids to inject: the result inline (`` -> RESULT``) for python-style
calls, or a whole ``tool_response`` turn (the template's text around it) for template-style
calls. The loop prefills those tokens and decoding goes on, so the KV cache always holds
exactly the reply's tokens.
"""

from typing import Any, List, Optional, Sequence

from .calls import FunctionCall, run_call
from .parsing import CallDetector, DEFAULT_TIMEOUT, format_result, TOOL_CALL_CLOSE

__all__ = ['FunctionCall', 'FunctionHook']


class FunctionHook:
    """
    Callable the generation loop runs after each token (see module docstring).

    ``constraint`` (set by ``constraints.Grammars``) is the reply's grammar, told after
    each call that ran so it can release the reply or start over.
    """

    CALL_CLOSERS = (TOOL_CALL_CLOSE,)  # text that ends a call: never a stop for the reply

    def __init__(self, model: Any, functions: Sequence[Any], template: Any = None,
                 timeout: float = DEFAULT_TIMEOUT):
        from ..chat.templates import template_for
        self.model = model
        self.template = template if template is not None else template_for(model.config)
        self.detector = CallDetector(functions)
        self.functions = self.detector.functions  # BotFunction records
        self.timeout = timeout
        self.constraint: Any = None

    def __call__(self, stream: Any, final: bool = False) -> Optional[List[int]]:
        """Return token ids to inject after the calls that just completed, or None."""
        calls = self.detector.feed(stream.text, final=final)
        if not calls:
            return None
        tokens: List[int] = []
        start = len(stream.tokens)
        for call in calls:
            made = run_call(call, self.functions, timeout=self.timeout)
            # a template without a tool_response role gets the result inline, like python style
            made.turn = call.style != 'python' and self.template.has_role('tool_response')
            # (python style, or no tool_response role: `` -> RESULT`` inline)
            made.content = format_result(call, made.result, self.template) if made.turn \
                else f' -> {made.result}'
            made.token_start = start + len(tokens)
            tokens += self._tool_turn(made.content) if made.turn else self._text(made.content)
            made.token_end = start + len(tokens)
            stream.calls.append(made)
        # the injected text is not model output: never detect calls inside it
        self.detector.skip(len(self.model.detokenize(list(stream.tokens) + tokens)))
        if self.constraint is not None:
            self.constraint.call_ran()
        return tokens

    def _text(self, text: str, markup: bool = False) -> List[int]:
        """Tokenize result text (never control tokens) or, with ``markup``, template text."""
        return self.model.backend.tokenize(text, special=markup)

    def _tool_turn(self, content: str) -> List[int]:
        """Close the bot turn, add the tool_response turn, and reopen the bot turn."""
        bot, tool, reopen = self.template.affixes(['bot', 'tool_response', 'bot'])
        # piece by piece, as the chat renders these turns
        return (self._text(bot[1], True) + self._text(tool[0], True) + self._text(content)
                + self._text(tool[1], True) + self._text(reopen[0], True))

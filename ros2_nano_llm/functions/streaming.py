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

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from .parsing import CallDetector, execute, format_result, ToolCall


@dataclass
class FunctionCall:
    """One call made during a reply: where its result sits in ``reply.tokens``."""

    call: ToolCall
    result: str
    token_start: int     # first injected token
    token_end: int       # one past the last injected token
    content: str         # the result text as placed in the chat
    turn: bool           # True when injected as its own tool_response turn


class FunctionHook:
    """Callable the generation loop runs after each token (see module docstring)."""

    def __init__(self, model: Any, functions: Sequence[Any], template: Any = None,
                 timeout: float = 10.0):
        from ..chat.templates import get_template
        cfg = model.config
        self.model = model
        self.functions = list(functions)
        self.template = template if template is not None else get_template(
            None, model_name=cfg.name, model_type=cfg.model_type,
            tokenizer_chat_template=cfg.tokenizer_chat_template)
        self.detector = CallDetector(self.functions)
        self.timeout = timeout

    def __call__(self, stream: Any, final: bool = False) -> Optional[List[int]]:
        """Return token ids to inject after the calls that just completed, or None."""
        calls = self.detector.feed(stream.text, final=final)
        if not calls:
            return None
        tokens, records = [], []
        tokenize = self.model.backend.tokenize
        for call in calls:
            result = execute(call, self.functions, timeout=self.timeout)
            # a template without a tool_response role gets the result inline, like python style
            turn = call.style != 'python' and self.template.has_role('tool_response')
            content = format_result(call, result, self.template) if turn or \
                call.style == 'python' else f' -> {result}'
            # the result is plain text (never control tokens); only the turn markup is special
            before, after = self._tool_turn(turn)
            tokens += tokenize(before, special=True) + tokenize(content, special=False) + \
                tokenize(after, special=True)
            records.append((call, result, content, turn))
        start = len(stream.tokens)
        for call, result, content, turn in records:
            stream.calls.append(FunctionCall(call, result, start, start + len(tokens), content,
                                             turn))
        # the injected text is not model output: never detect calls inside it
        self.detector.skip(len(self.model.detokenize(list(stream.tokens) + tokens)))
        return tokens

    def _tool_turn(self, turn: bool) -> Tuple[str, str]:
        """Return the markup before and after a result: a tool_response turn, or nothing."""
        if not turn:
            return '', ''
        bot, tool, reopen = self.template.affixes(['bot', 'tool_response', 'bot'])
        return bot[1] + tool[0], tool[1] + reopen[0]

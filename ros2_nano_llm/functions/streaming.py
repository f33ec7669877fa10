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

The generation loop calls the hook after each token. The hook decodes only the new tokens
(:class:`IncrementalText`) and gives the new text to its :class:`CallDetector`. When a call
completes, the hook runs it and returns the token ids to inject: the result inline
(`` -> RESULT``) for python-style calls, or a whole ``tool_response`` turn (the template's
text around it) for template-style calls, as the template's :class:`ToolSyntax` says. The
loop prefills those tokens and decoding goes on, so the KV cache always holds exactly the
reply's tokens.

``max_calls`` is the reply's call budget: calls past it are not run, and the result the
model reads says why. A reply whose call was required (``tool_choice='required'`` or a
name) has a budget of that one call; its grammar lets no other call open. A call found
after the reply was stopped (``~/stop``, a cancel, an interrupting prompt) is not run
either: the stop flag is checked before each call starts.
When ``functions`` is a ``FunctionRegistry``, its ``runner`` runs the calls and its
``policy`` (``guard.CallPolicy``) approves them and takes their events (``started``,
``feedback``, ``ended``, ``refused``) as they happen.
"""

import json
from typing import Any, Callable, List, Optional, Sequence

from .calls import bound_args, FunctionCall, run_call
from .context import CallContext
from .guard import CallPolicy, CallRecord, STOPPED
from .parsing import CallDetector, DEFAULT_TIMEOUT, format_result
from .registry import FunctionRegistry
from .runner import CallRunner
from .syntax import detected_syntaxes, syntax_of

__all__ = ['FunctionCall', 'FunctionHook', 'IncrementalText']


class IncrementalText:
    """
    Decode a growing token list piece by piece, over a sliding window.

    The cost per call is the window's, not the whole reply's; a leading-space or
    merged-byte token decodes as it does in the full text (the method of
    ``chat.stream.StreamingResponse``).
    """

    def __init__(self, detokenize: Callable[[List[int]], str]):
        self._detokenize = detokenize
        self._prefix = 0   # tokens[_prefix:_read] decode to text already given
        self._read = 0

    def new_text(self, tokens: Sequence[int], final: bool = False) -> str:
        """Return the text that ``tokens`` (the list so far, only growing) adds."""
        if len(tokens) <= self._read:
            return ''
        prefix = self._detokenize(list(tokens[self._prefix:self._read]))
        text = self._detokenize(list(tokens[self._prefix:]))
        if len(text) <= len(prefix) or (text.endswith('\ufffd') and not final):
            return ''  # nothing new yet, or an incomplete multi-byte character
        self._prefix, self._read = self._read, len(tokens)
        return text[len(prefix):]


class FunctionHook:
    """
    Callable the generation loop runs after each token (see module docstring).

    ``template`` is the reply's ``ChatTemplate``: its ``tool_syntax`` says which calls are
    found, how results are formatted and in which role they go back. ``max_calls`` is
    the reply's call budget (None: no limit); ``forced`` says it is 1 because the call was
    required (``tool_choice``). ``runner`` runs the calls (default: the
    registry's when ``functions`` is a ``FunctionRegistry``, else the hook's own; see
    :class:`.runner.CallRunner`). ``constraint`` (set by ``constraints.Grammars``) is the
    reply's grammar, told after each call that ran so it can release the reply or start
    over.
    """

    def __init__(self, model: Any, functions: Sequence[Any], template: Any = None,
                 timeout: float = DEFAULT_TIMEOUT, *, max_calls: Optional[int] = None,
                 runner: Optional[CallRunner] = None, forced: bool = False):
        if template is None:
            raise ValueError('FunctionHook needs the chat template (its tool syntax) of '
                             'the reply')
        if max_calls is not None and max_calls < 0:
            raise ValueError(f'max_calls must be None (no limit) or >= 0, got {max_calls}')
        self.model = model
        self.template = template
        self.syntax = syntax_of(template)
        self.syntaxes = detected_syntaxes(self.syntax)
        self.detector = CallDetector(functions, syntaxes=self.syntaxes)
        self.functions = self.detector.functions  # BotFunction records
        self.timeout = timeout
        self.max_calls = max_calls
        self.forced = forced  # the call was required (tool_choice): the budget is that one
        self.made = 0  # calls run (or refused past the budget) in this reply
        registry = functions if isinstance(functions, FunctionRegistry) else None
        self.runner = runner if runner is not None else (
            registry.runner if registry is not None else CallRunner())
        self.policy = registry.policy if registry is not None else CallPolicy()
        self.constraint: Any = None
        self.closers = tuple(c for s in self.syntaxes for c in s.closers)
        self._text = IncrementalText(model.detokenize)

    @property
    def CALL_CLOSERS(self) -> tuple:  # noqa: N802 - the name callers know
        """Return the text that ends a call: never a stop for the reply."""
        return self.closers

    def __call__(self, stream: Any, final: bool = False) -> Optional[List[int]]:
        """Return token ids to inject after the calls that just completed, or None."""
        calls = self.detector.push(self._text.new_text(stream.tokens, final), final=final)
        if not calls:
            return None
        tokens: List[int] = []
        start = len(stream.tokens)
        for call in calls:
            made = self._run(call, stream)
            # a template without a tool_response role gets the result inline, like python style
            made.turn = call.style != 'python' and self.syntax.result_role is not None \
                and self.template.has_role(self.syntax.result_role)
            # (python style, or no tool_response role: `` -> RESULT`` inline)
            made.content = format_result(call, made.result, self.template) if made.turn \
                else f' -> {made.result}'
            made.token_start = start + len(tokens)
            tokens += self._tool_turn(made.content) if made.turn else self._text_ids(
                made.content)
            made.token_end = start + len(tokens)
            stream.record.calls.append(made)
        # the injected text is not model output: never detect calls inside it
        self.detector.push(self._text.new_text(list(stream.tokens) + tokens, True),
                           output=False)
        if self.constraint is not None:
            self.constraint.call_ran()
        return tokens

    def _run(self, call: Any, stream: Any) -> FunctionCall:
        self.made += 1
        turn_id = self.policy.reply_turn()
        if self.max_calls is not None and self.made > self.max_calls:
            return self._refused(call, turn_id, (
                'error: not run: this reply was to make one call, and made it' if self.forced
                else f'error: not run: this reply already made its {self.max_calls} function '
                f'call{"" if self.max_calls == 1 else "s"}, the limit'))
        if stream.stopped:  # (execute checks again, right before the function starts)
            return self._refused(call, turn_id, f'error: {call.name!r} not run: {STOPPED}')
        return run_call(call, self.functions, timeout=self.timeout, runner=self.runner,
                        policy=self.policy, turn_id=turn_id, stopped=lambda: stream.stopped)

    def _refused(self, call: Any, turn_id: int, text: str) -> FunctionCall:
        """Record (and report) a call that is not run; the model reads ``text``."""
        args = bound_args(call, self.functions)
        context = CallContext(self.policy.new_id(), str(call.name)[:80], turn_id)
        CallRecord(self.policy, context, json.dumps(args, default=str)).refuse(text)
        return FunctionCall(name=call.name, args=args, call=call, result=text,
                            call_id=context.call_id)

    def _text_ids(self, text: str, markup: bool = False) -> List[int]:
        """Tokenize result text (never control tokens) or, with ``markup``, template text."""
        return self.model.backend.tokenize(text, special=markup)

    def _tool_turn(self, content: str) -> List[int]:
        """Close the bot turn, add the tool_response turn, and reopen the bot turn."""
        bot, tool, reopen = self.template.affixes(['bot', 'tool_response', 'bot'])
        # piece by piece, as the chat renders these turns
        return (self._text_ids(bot[1], True) + self._text_ids(tool[0], True)
                + self._text_ids(content) + self._text_ids(tool[1], True)
                + self._text_ids(reopen[0], True))

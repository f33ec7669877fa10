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
r"""
Find function calls in model output while it streams, and run them safely.

Model output is never ``eval``'d (see :mod:`.calltext`). What a call looks like is the
:class:`~.syntax.ToolSyntax`'s: every reply is searched for

* python style, ``NAME(args)`` with literal positional and keyword arguments, for the
  names of the known functions only (so prose such as ``print(x)`` is not a call). A
  call is complete when its parentheses balance (strings may contain parentheses). A
  name in prose is not a call: inside a code span, a fenced code block or quotes (the
  rule of :class:`~.syntax.PythonSyntax`, see :mod:`.syntax`);
* the marker syntaxes: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
  (Hermes, Qwen, chat-ml-tools) and llama-3.1's ``<|python_tag|>`` followed by
  ``{"name": ..., "parameters": {...}}``, plus the template's own syntax when it has
  another. Unknown names are reported too, so the model gets an error text back.

The generation loop uses it like this (``functions.streaming.FunctionHook`` does)::

    detector = CallDetector(functions, syntaxes=detected_syntaxes(template.tool_syntax))
    for piece in new_text:                      # the reply as it decodes, piece by piece
        for call in detector.push(piece):       # only calls completed by this piece
            result = execute(call, functions)   # text; errors are text too, never raised
            injected = format_result(call, result, template)
            detector.push(injected, output=False)  # injected text is not model output
    calls = detector.push('', final=True)       # at the end: handle these the same way

``feed(text)`` takes the whole text so far instead (it must only grow). ``final=True``
matters for templates whose stop strings end a call (chat-ml-tools stops at
``</tool_call>``, llama-3.1 at ``<|eom_id|>``): when the reply text lacks the closing tag,
the final feed still reports the call.

Python-style results are inserted inline as `` -> RESULT`` right after the call, e.g.
``The time is TIME() -> 3:05 PM``. Template-style results are the content of a
``tool_response`` message, formatted by the template's syntax: for chat-ml-tools Hermes'
``{"name": ..., "content": ...}`` (inside ``<tool_response>`` tags, which the built-in
template adds), for llama-3.1 and others the plain result text.
"""

import json
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .calltext import (check_json, load_json, MAX_CALL_CHARS, MAX_JSON_CHARS, MAX_JSON_DEPTH,
                       MAX_TEMPLATE_CHARS, parse_json_call, parse_json_calls,
                       parse_python_call, short, ToolCall)
from .context import CallContext
from .guard import CallPolicy, CallRecord, ENDED, REFUSED, run_checked
from .record import as_records, find_record, FunctionRecord
from .runner import CallRunner
from .syntax import (DETECTED, HERMES, LLAMA_31, marker_regex, ProseState, PYTHON,
                     syntax_of, ToolSyntax)

TOOL_CALL_OPEN = HERMES.markers[0]
TOOL_CALL_CLOSE = HERMES.closers[0]
PYTHON_TAG = LLAMA_31.markers[0]
LLAMA_END_TAGS = LLAMA_31.ends
STYLES = ('auto', 'python', 'template')

DEFAULT_TIMEOUT = 10.0
MAX_RESULT_CHARS = 2000       # results are cut to this many characters

__all__ = ['CallDetector', 'DEFAULT_TIMEOUT', 'MAX_CALL_CHARS', 'MAX_JSON_CHARS',
           'MAX_JSON_DEPTH', 'MAX_RESULT_CHARS', 'MAX_TEMPLATE_CHARS', 'PYTHON_TAG', 'STYLES',
           'TOOL_CALL_CLOSE', 'TOOL_CALL_OPEN', 'ToolCall', 'check_json', 'execute',
           'execute_call', 'find_calls', 'format_result', 'load_json', 'parse_json_call',
           'parse_json_calls', 'parse_python_call', 'result_to_text', 'run_with_timeout']


# ---------------------------------------------------------------------------- detection

class CallDetector:
    """
    Report each function call once, as soon as it is complete in streaming text.

    ``functions`` are the callable functions (default: the enabled ones); their names
    are what python-style detection looks for. ``style`` is ``'auto'`` (both),
    ``'python'`` or ``'template'``. ``syntaxes`` are the marker syntaxes searched
    (default :data:`~.syntax.DETECTED`). Give the text piece by piece to :meth:`push`
    (each costs the new text and the unfinished call only), or the whole text so far
    to :meth:`feed`.
    """

    def __init__(self, functions: Optional[Sequence[Any]] = None, style: str = 'auto',
                 syntaxes: Sequence[ToolSyntax] = DETECTED):
        if style not in STYLES:
            raise ValueError(f'unknown call style {style!r}; use one of {", ".join(STYLES)}')
        self.functions = as_records(functions)
        self.style = style
        names = sorted({f.name for f in self.functions}, key=len, reverse=True)
        self._python_re = None
        if names and style in ('auto', 'python'):
            self._python_re = re.compile(
                # not a method (x.NAME), not part of a name, not a definition (def NAME)
                r'(?<![\w.])(?<!def )(' + '|'.join(re.escape(n) for n in names) + r')\(')
        markers = [s for s in syntaxes if s.markers] if style in ('auto', 'template') else []
        self._marker_re, self._by_marker = marker_regex(markers)
        longest = max([len(n) + 1 for n in names] + [len(m) for m in self._by_marker] + [1])
        self._keep_tail = longest - 1   # a partial opening may end the text
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (start of a new reply)."""
        self._buf = ''                  # the unfinished text: the reply from _base on
        self._base = 0                  # index in the reply of _buf[0]
        self._pos = 0                   # everything before this (reply index) is finished
        self._prose = ProseState()      # the prose rule's state at _base
        self._length = 0                # the reply's length so far
        self._fed = ''                  # feed(): the whole text it was last given

    def skip(self, upto: int) -> None:
        """Ignore text before index ``upto`` of the reply (e.g. an injected result)."""
        self._pos = max(self._pos, upto)

    def push(self, piece: str, final: bool = False, output: bool = True) -> List[ToolCall]:
        """
        Add the next ``piece`` of the reply; return the calls that became complete.

        ``output=False``: the piece is not model output (a result the loop injected), so no
        call is found in it. ``final=True`` means the text is finished: calls left open are
        reported (with an error unless their syntax allows the end of text, as llama-3.1's
        ``<|python_tag|>`` does).
        """
        self._buf += piece
        self._length += len(piece)
        if not output:
            self._pos = self._length
        calls: List[ToolCall] = []
        while True:
            start, syntax = self._next_opening()
            if syntax is None:
                self._pos = max(self._pos, self._length - self._keep_tail)
                break
            found, end = syntax.complete(self._buf, start - self._base, final)
            if end is None:      # incomplete: wait here for more text
                self._pos = start
                break
            for call in found:
                call.span = (call.span[0] + self._base, call.span[1] + self._base)
            calls.extend(found)
            self._pos = end + self._base
        self._trim()
        return calls

    def feed(self, text: str, final: bool = False) -> List[ToolCall]:
        """
        Return the calls that became complete since the last feed.

        ``text`` is the whole text so far and should only grow; if it no longer starts
        with what was fed before, the detector starts over.
        """
        if len(text) < len(self._fed) or not text.startswith(self._fed):
            self.reset()
        piece, self._fed = text[len(self._fed):], text
        return self.push(piece, final)

    def _trim(self) -> None:
        # keep only the unfinished text; the prose state moves over what is dropped
        # (4 characters stay: the python regex looks behind a name for 'def ' or '.')
        cut = self._pos - self._base - 4
        if cut > 0:
            self._prose.advance(self._buf[:cut])
            self._buf, self._base = self._buf[cut:], self._base + cut

    def _next_opening(self) -> Tuple[int, Optional[ToolSyntax]]:
        at = self._pos - self._base
        best, found = len(self._buf) + 1, None
        if self._python_re is not None:
            for match in self._python_re.finditer(self._buf, at):
                if not self._is_prose(match.start()):
                    best, found = match.start(), PYTHON
                    break
        if self._marker_re is not None:
            match = self._marker_re.search(self._buf, at)
            if match and match.start() < best:
                best, found = match.start(), self._by_marker[match.group(0)]
        return best + self._base, found

    def _is_prose(self, at: int) -> bool:
        probe = self._prose.copy()
        probe.advance(self._buf[:at])
        return probe.is_prose()


def find_calls(text: str, functions: Optional[Sequence[Any]] = None,
               style: str = 'auto') -> List[ToolCall]:
    """Return every call in a finished ``text`` (see :class:`CallDetector`)."""
    return CallDetector(functions, style).feed(text, final=True)


# ---------------------------------------------------------------------------- execution

def run_with_timeout(func: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any],
                     timeout: float, runner: Optional[CallRunner] = None,
                     name: str = '') -> Tuple[bool, Any]:
    """
    Call ``func`` on ``runner``'s pool (see :class:`.runner.CallRunner`), at most ``timeout`` s.

    Returns ``(True, value)``, or ``(False, short error text)`` when it raised or timed
    out. Without a ``runner`` one is made for this call; an overrun is still logged.
    """
    own = runner is None
    runner = CallRunner(max_workers=1) if own else runner
    try:
        return runner.run(func, args, kwargs, timeout, name)
    finally:
        if own:
            runner.close()


def result_to_text(value: Any, max_chars: int = MAX_RESULT_CHARS) -> str:
    """Turn a function's return value into text (``None`` -> ``'done'``)."""
    if value is None:
        text = 'done'
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
    if len(text) > max_chars:
        text = text[:max_chars] + ' ...(truncated)'
    return text


def _usage(func: FunctionRecord) -> str:
    params = func.signature_text()[len(func.name) + 1:-1]
    return f'expected arguments: {params}' if params else 'it takes no arguments'


def execute(call: ToolCall, functions: Optional[Sequence[Any]] = None,
            timeout: float = DEFAULT_TIMEOUT, max_chars: int = MAX_RESULT_CHARS,
            runner: Optional[CallRunner] = None, *, policy: Optional[CallPolicy] = None,
            turn_id: int = 0, stopped: Optional[Callable[[], bool]] = None,
            call_id: str = '') -> str:
    """
    Run ``call`` (on ``runner``'s thread pool) and return its result as text; never raises.

    ``functions`` are the callable functions (default: the enabled ones). A malformed
    call, an unknown name, arguments that do not bind or break a limit (checked before
    calling), an exception or a timeout (the function's own ``timeout`` if set, else
    ``timeout``) each give a short ``'error: ...'`` text for the model. ``policy``
    (:class:`.guard.CallPolicy`) approves calls and takes their events, reported with
    ``call_id`` (default: a new one) and ``turn_id``; ``stopped()`` True (the reply that
    made the call was stopped) keeps the call from starting. See :mod:`.guard`.
    """
    return execute_call(call, functions, timeout, max_chars, runner, policy=policy,
                        turn_id=turn_id, stopped=stopped, call_id=call_id)[0]


def execute_call(call: ToolCall, functions: Optional[Sequence[Any]] = None,
                 timeout: float = DEFAULT_TIMEOUT, max_chars: int = MAX_RESULT_CHARS,
                 runner: Optional[CallRunner] = None, *, policy: Optional[CallPolicy] = None,
                 turn_id: int = 0, stopped: Optional[Callable[[], bool]] = None,
                 call_id: str = '') -> Tuple[str, CallRecord]:
    """Run ``call`` as :func:`execute` does; return its text and its :class:`.guard.CallRecord`."""
    policy = policy if policy is not None else CallPolicy()
    context = CallContext(call_id or policy.new_id(), str(call.name)[:80], turn_id)
    if stopped is not None:
        context.stopped = stopped
    made = CallRecord(policy, context, _raw_args_json(call))
    try:
        return _execute(call, functions, timeout, max_chars, runner, made), made
    except Exception as exc:  # noqa: B902 - the generation loop must never see an exception
        text = f'error: {type(exc).__name__}: {short(exc)}'
        made.emit(ENDED if made.started else REFUSED, text)
        return text, made


def _execute(call: ToolCall, functions: Optional[Sequence[Any]], timeout: float,
             max_chars: int, runner: Optional[CallRunner], made: CallRecord) -> str:
    if call.error:
        return made.refuse(f'error: {call.error}')
    records = as_records(functions)
    func = find_record(call.name, records)
    if func is None:
        available = ', '.join(f.name for f in records) or 'none'
        return made.refuse(f'error: unknown function {short(call.name, 80)!r}; available: '
                           f'{available}')
    try:
        bound = func.bind(call.args, call.kwargs)
    except TypeError as exc:
        return made.refuse(f'error: bad arguments for {func.name!r}: {short(exc)}; '
                           f'{_usage(func)}')
    made.args_json = json.dumps(dict(bound.arguments), default=str)
    ok, value = run_checked(func, bound, made, func.timeout if func.timeout else timeout,
                            runner)
    if not made.started:
        return value  # refused: the text is the refusal's
    text = result_to_text(value, max_chars) if ok else f'error: {func.name!r} failed: {value}'
    made.emit(ENDED, text, ok)
    return text


def _raw_args_json(call: ToolCall) -> str:
    """Return a call's arguments as JSON before binding (positional ones by index)."""
    args = {str(i): value for i, value in enumerate(call.args or ())}
    args.update(call.kwargs or {})
    return json.dumps(args, default=str)


def format_result(call: ToolCall, result_text: str, template: Any = None) -> str:
    r"""
    Format a call's result for the chat.

    Python style: the inline text to insert right after the call, `` -> RESULT``.
    Template style: the content of the ``tool_response`` message, as the tool syntax of
    ``template`` writes it: a ``ChatTemplate``, a template dict, a ``ToolSyntax`` or a
    syntax name (see :func:`.syntax.syntax_of`). For chat-ml-tools (Hermes/Qwen) it is
    Hermes' ``{"name": ..., "content": ...}``, inside ``<tool_response>\n...\n</tool_response>``
    unless the template's ``tool_response`` role adds those tags itself (the built-in
    chat-ml-tools does). For other templates (e.g. llama-3.1's ``ipython`` role) it is the
    plain result text.
    """
    if call.style == 'python':
        return PYTHON.format_result(call, result_text)
    return syntax_of(template).format_result(call, result_text)

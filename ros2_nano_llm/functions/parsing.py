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

Model output is never ``eval``'d: python-style calls are parsed with ``ast.parse`` and
each argument node goes through ``ast.literal_eval``; template calls are JSON.

Two call syntaxes are recognised:

* python style, ``NAME(args)`` with literal positional and keyword arguments, for the
  names of the known functions only (so prose such as ``print(x)`` is not a call). A
  call is complete when its parentheses balance (strings may contain parentheses).
* template style: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
  (chat-ml-tools, Hermes, Qwen) and llama-3.1's ``<|python_tag|>`` followed by
  ``{"name": ..., "parameters": {...}}`` (complete when the JSON object closes, or at
  ``<|eom_id|>``/``<|eot_id|>``/the end of the text). Unknown names are reported too,
  so the model gets an error text back.

The generation loop uses it like this::

    functions = registry                       # a FunctionRegistry, or a list of functions
    detector = CallDetector(functions)
    for piece in stream:                       # the reply as it decodes
        reply_text += piece
        for call in detector.feed(reply_text):  # only calls completed since last feed
            result = execute(call, functions)   # text; errors are text too, never raised
            injected = format_result(call, result, chat_template)
            if call.style == 'python':
                reply_text += injected          # inline, then continue generating
                detector.skip(len(reply_text))  # injected text is not model output
            else:
                history.append('tool_response', injected)  # then generate again
    calls = detector.feed(reply_text, final=True)  # at the end: handle these the same way

``final=True`` matters for templates whose stop strings end a call (chat-ml-tools stops
at ``</tool_call>``, llama-3.1 at ``<|eom_id|>``): when the reply text lacks the closing
tag, the final feed still reports the call.

Python-style results are inserted inline as `` -> RESULT`` right after the call, e.g.
``The time is TIME() -> 3:05 PM``. Template-style results are the content of a
``tool_response`` message: for chat-ml-tools Hermes' ``{"name": ..., "content": ...}``
(inside ``<tool_response>`` tags, which the built-in template adds), for llama-3.1 and
others the plain result text.
"""

import ast
from dataclasses import dataclass, field
import json
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .record import as_records, find_record, FunctionRecord

TOOL_CALL_OPEN = '<tool_call>'
TOOL_CALL_CLOSE = '</tool_call>'
PYTHON_TAG = '<|python_tag|>'
LLAMA_END_TAGS = ('<|eom_id|>', '<|eot_id|>')
STYLES = ('auto', 'python', 'template')
# Templates whose tool responses are Hermes JSON inside <tool_response> tags.
TOOL_RESPONSE_TAG_TEMPLATES = ('chat-ml-tools', 'hermes', 'nous-hermes', 'qwen')

DEFAULT_TIMEOUT = 10.0
MAX_CALL_CHARS = 2000         # a python-style call still open after this many chars is dropped
MAX_TEMPLATE_CHARS = 8000     # same for a template call without its closing tag
MAX_RESULT_CHARS = 2000       # results are cut to this many characters
MAX_JSON_CHARS = 65536        # JSON arguments longer than this are refused unparsed
MAX_JSON_DEPTH = 32           # and so is JSON nested deeper than this
_MAX_ERROR_CHARS = 200

_TEMPLATE_OPEN_RE = re.compile(re.escape(TOOL_CALL_OPEN) + '|' + re.escape(PYTHON_TAG))
_NAME_IN_JSON_RE = re.compile(r'"name"\s*:\s*"([^"\\]{1,80})"')


@dataclass
class ToolCall:
    """
    One function call found in model output.

    ``span`` is ``(start, end)`` in the text it was found in; ``style`` is ``'python'``
    or ``'template'``; ``error`` says why a malformed call cannot run (else ``None``).
    """

    name: str
    args: List[Any] = field(default_factory=list)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    raw: str = ''
    span: Tuple[int, int] = (0, 0)
    style: str = 'python'
    error: Optional[str] = None


def _short(text: Any, limit: int = _MAX_ERROR_CHARS) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


# ---------------------------------------------------------------------------- scanning

def _scan_brackets(text: str, start: int, openers: str = '([{', closers: str = ')]}',
                   quotes: str = '\'"') -> Tuple[str, int]:
    """
    Scan from the opening bracket at ``start`` to its match, skipping string literals.

    Returns ``('complete', end)`` with ``end`` just past the closing bracket,
    ``('incomplete', len(text))`` when the text ends first, or ``('broken', i)`` at a
    mismatched bracket or a newline inside a one-line string.
    """
    stack: List[str] = []
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch in quotes:
            triple = text.startswith(ch * 3, i)
            delim = ch * 3 if triple else ch
            i += len(delim)
            while True:
                if i >= n:
                    return 'incomplete', n
                c = text[i]
                if c == '\\':
                    i += 2
                    continue
                if not triple and c == '\n':
                    return 'broken', i
                if text.startswith(delim, i):
                    i += len(delim)
                    break
                i += 1
            continue
        if ch in openers:
            stack.append(closers[openers.index(ch)])
        elif ch in closers:
            if not stack or stack.pop() != ch:
                return 'broken', i + 1
            if not stack:
                return 'complete', i + 1
        i += 1
    return 'incomplete', n


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError('arguments must be literals (numbers, strings, True/False/None, '
                         'lists, dicts)') from None


def _dotted_name(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f'{base}.{node.attr}' if base else None
    return None


def parse_python_call(raw: str, span: Tuple[int, int] = (0, 0),
                      style: str = 'python') -> ToolCall:
    """
    Parse ``NAME(args)`` into a :class:`ToolCall` without evaluating code.

    Only literal arguments are accepted; anything else gives a call with ``error`` set.
    """
    guess = re.match(r'\s*([\w.]{1,80})', raw)
    call = ToolCall(name=guess.group(1) if guess else '', raw=raw, span=span, style=style)
    try:
        tree = ast.parse(raw.strip(), mode='eval')
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        call.error = f'malformed call {_short(raw, 80)!r}: {_short(getattr(exc, "msg", exc))}'
        return call
    node = tree.body
    name = _dotted_name(node.func) if isinstance(node, ast.Call) else None
    if name is None:
        call.error = f'not a function call by name: {_short(raw, 80)!r}'
        return call
    call.name = name
    try:
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ValueError('*args are not supported')
            call.args.append(_literal(arg))
        for kw in node.keywords:
            if kw.arg is None:
                raise ValueError('**kwargs are not supported')
            call.kwargs[kw.arg] = _literal(kw.value)
    except ValueError as exc:
        call.args, call.kwargs = [], {}
        call.error = f'bad arguments in {_short(raw, 80)!r}: {exc}'
    return call


def _calls_from_json_value(value: Any, raw: str, span: Tuple[int, int]) -> List[ToolCall]:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [c for v in value for c in _calls_from_json_value(v, raw, span)]
    call = ToolCall(name='', raw=raw, span=span, style='template')
    if not isinstance(value, dict):
        call.error = 'a tool call must be a JSON object {"name": ..., "arguments": {...}}'
        return [call]
    if isinstance(value.get('function'), dict):  # OpenAI style {"function": {...}}
        value = value['function']
    name = value.get('name')
    if not isinstance(name, str) or not name:
        call.error = 'the tool call has no "name"'
        return [call]
    call.name = name
    arguments = value.get('arguments', value.get('parameters', {}))
    if isinstance(arguments, str):
        try:
            arguments = load_json(arguments) if arguments.strip() else {}
        except ValueError as exc:
            call.error = f'malformed JSON in the arguments of {_short(name, 80)!r}: {exc}'
            return [call]
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        call.error = f'the arguments of {_short(name, 80)!r} must be a JSON object'
        return [call]
    call.kwargs = arguments
    return [call]


def check_json(text: str, max_chars: int = MAX_JSON_CHARS,
               max_depth: int = MAX_JSON_DEPTH) -> None:
    """
    Raise ValueError if ``text`` is too long or nests brackets too deep to parse safely.

    Python's JSON decoder recurses once per nesting level, so a deep enough text ends in a
    ``RecursionError``; this scan (strings skipped) refuses such text before decoding it.
    """
    if len(text) > max_chars:
        raise ValueError(f'JSON of {len(text)} characters is longer than the {max_chars} '
                         f'allowed')
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == '\\':
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in '[{':
            depth += 1
            if depth > max_depth:
                raise ValueError(f'JSON nested deeper than {max_depth} levels')
        elif ch in ']}':
            depth -= 1


def load_json(text: str) -> Any:
    """Parse bounded JSON (see :func:`check_json`); raise ValueError for anything bad."""
    check_json(text)
    try:
        return json.loads(text)
    except RecursionError:  # the scan should prevent it; never let it escape
        raise ValueError('JSON nested too deep') from None


def parse_json_calls(content: str, raw: Optional[str] = None,
                     span: Tuple[int, int] = (0, 0)) -> List[ToolCall]:
    """
    Parse the JSON inside a template tool call into one (or more) :class:`ToolCall`.

    Accepts ``{"name", "arguments"|"parameters"}`` (arguments may be a JSON string) or a
    list of such objects. Malformed JSON gives a call with ``error`` set.
    """
    raw = content if raw is None else raw
    text = content.strip()
    try:
        check_json(text)
        value, end = json.JSONDecoder().raw_decode(text)
        if text[end:].strip():
            raise ValueError(f'unexpected text after the JSON object at char {end}')
    except (ValueError, RecursionError) as exc:
        guess = _NAME_IN_JSON_RE.search(text[:_MAX_ERROR_CHARS])
        return [ToolCall(name=guess.group(1) if guess else '', raw=raw, span=span,
                         style='template', error=f'malformed JSON in tool call: {_short(exc)}')]
    return _calls_from_json_value(value, raw, span)


def parse_json_call(name: str, args_json: str = '') -> ToolCall:
    """
    Make a call from a function name and JSON arguments (an object, or empty).

    Used by the node's ``~/call_function`` service; a malformed ``args_json``, or one too
    long or too deeply nested to parse safely (:func:`check_json`), gives a call with
    ``error`` set: it never raises.
    """
    args_json = args_json or ''
    shown = _short(args_json.strip(), 200) or '{}'
    raw = f'{{"name": {json.dumps(_short(name, 80))}, "arguments": {shown}}}'
    call = ToolCall(name=name, raw=raw, style='template')
    try:
        args = load_json(args_json) if args_json.strip() else {}
    except ValueError as exc:
        call.error = f'malformed JSON arguments: {_short(exc)}'
        return call
    if not isinstance(args, dict):
        call.error = 'arguments must be a JSON object such as {"on": true}'
        return call
    call.kwargs = args
    return call


# ---------------------------------------------------------------------------- detection

class CallDetector:
    """
    Report each function call once, as soon as it is complete in streaming text.

    ``functions`` are the callable functions (default: the enabled ones); their names
    are what python-style detection looks for. ``style`` is ``'auto'`` (both),
    ``'python'`` or ``'template'``. Feed the whole text so far after each new piece.
    """

    def __init__(self, functions: Optional[Sequence[Any]] = None, style: str = 'auto'):
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
        longest = max([len(n) + 1 for n in names] + [len(TOOL_CALL_OPEN), len(PYTHON_TAG)])
        self._keep_tail = longest - 1   # a partial opening may end the text
        self._pos = 0                   # everything before this is finished
        self._seen = ''                 # text[:_pos] last time, to notice a new text

    def reset(self) -> None:
        """Forget everything seen (start of a new reply)."""
        self._pos = 0
        self._seen = ''

    def skip(self, upto: int) -> None:
        """Ignore text before index ``upto`` (e.g. a result injected after a call)."""
        self._pos = max(self._pos, upto)

    def feed(self, text: str, final: bool = False) -> List[ToolCall]:
        """
        Return the calls that became complete since the last feed.

        ``text`` is the whole text so far and should only grow; if it no longer
        starts with what was already scanned, the detector starts over. ``final=True``
        means the text is finished: calls left open are reported (with an error unless
        their syntax allows the end of text, as llama-3.1's ``<|python_tag|>`` does).
        """
        if not text.startswith(self._seen) or len(text) < self._pos:
            self.reset()
        calls: List[ToolCall] = []
        while True:
            start, kind = self._next_opening(text)
            if kind is None:
                self._pos = max(self._pos, len(text) - self._keep_tail, 0)
                break
            found, end = self._complete(text, start, kind, final)
            if end is None:      # incomplete: wait here for more text
                self._pos = start
                break
            calls.extend(found)
            self._pos = end
        self._seen = text[:self._pos]
        return calls

    def _next_opening(self, text: str) -> Tuple[int, Optional[str]]:
        best, kind = len(text) + 1, None
        if self._python_re is not None:
            match = self._python_re.search(text, self._pos)
            if match:
                best, kind = match.start(), 'python'
        if self.style in ('auto', 'template'):
            match = _TEMPLATE_OPEN_RE.search(text, self._pos)
            if match and match.start() < best:
                best, kind = match.start(), match.group(0)
        return best, kind

    def _complete(self, text: str, start: int, kind: str,
                  final: bool) -> Tuple[List[ToolCall], Optional[int]]:
        if kind == 'python':
            return self._complete_python(text, start, final)
        if kind == TOOL_CALL_OPEN:
            return self._complete_tool_call(text, start, final)
        return self._complete_python_tag(text, start, final)

    def _complete_python(self, text, start, final):
        open_idx = text.index('(', start)
        # scan no further than the limit, so a whole text and a stream agree
        status, end = _scan_brackets(text[:start + MAX_CALL_CHARS], open_idx)
        if status == 'complete':
            raw = text[start:end]
            return [parse_python_call(raw, (start, end))], end
        name = text[start:open_idx]
        if status == 'broken':
            raw = text[start:end]
            return [ToolCall(name=name, raw=raw, span=(start, end), error=(
                f'malformed call {_short(raw, 80)!r}: unbalanced brackets or quotes'))], end
        if final or len(text) - start > MAX_CALL_CHARS:
            end = min(len(text), start + MAX_CALL_CHARS)
            return [ToolCall(name=name, raw=text[start:end], span=(start, end), error=(
                f'the call to {name!r} was never closed with ")"'))], end
        return [], None

    def _complete_tool_call(self, text, start, final):
        body = start + len(TOOL_CALL_OPEN)
        close = text.find(TOOL_CALL_CLOSE, body, start + MAX_TEMPLATE_CHARS)
        if close >= 0:
            end = close + len(TOOL_CALL_CLOSE)
            return parse_json_calls(text[body:close], text[start:end], (start, end)), end
        if final or len(text) - start > MAX_TEMPLATE_CHARS:
            end = min(len(text), start + MAX_TEMPLATE_CHARS)
            content = text[body:end]
            calls = parse_json_calls(content, text[start:end], (start, end))
            if end < len(text):
                for call in calls:
                    call.error = call.error or f'{TOOL_CALL_OPEN} was never closed'
            return calls, end
        return [], None

    def _complete_python_tag(self, text, start, final):
        body = start + len(PYTHON_TAG)
        limit = start + MAX_TEMPLATE_CHARS
        first = body
        while first < len(text) and text[first].isspace():
            first += 1
        stop = min([i for i in (text.find(t, body, limit) for t in LLAMA_END_TAGS) if i >= 0],
                   default=-1)
        if stop < 0 and len(text) > limit:
            stop = limit   # never finished: give up here, the model hears an error
        elif stop < 0 and final:
            stop = len(text)
        if first < len(text) and text[first] == '{':    # custom tool: JSON
            status, end = _scan_brackets(text[:limit], first, '{[', '}]', '"')
            if status == 'incomplete' or (stop >= 0 and end > stop):
                if stop < 0:
                    return [], None
                end = stop
            return parse_json_calls(text[first:end], text[start:end], (start, end)), end
        paren = text.find('(', first, stop if stop >= 0 else len(text))
        if paren >= 0:                        # built-in tool code: NAME.call(...)
            status, end = _scan_brackets(text[:limit], paren)
            if status != 'incomplete' and (stop < 0 or end <= stop):
                return [self._tagged_python(text, start, body, end)], end
        if stop < 0:
            return [], None
        if not text[body:stop].strip():
            return [ToolCall(name='', raw=text[start:stop], span=(start, stop),
                             style='template', error='empty tool call')], stop
        return [self._tagged_python(text, start, body, stop)], stop

    @staticmethod
    def _tagged_python(text: str, start: int, body: int, end: int) -> ToolCall:
        call = parse_python_call(text[body:end], (start, end), style='template')
        call.raw = text[start:end]
        return call


def find_calls(text: str, functions: Optional[Sequence[Any]] = None,
               style: str = 'auto') -> List[ToolCall]:
    """Return every call in a finished ``text`` (see :class:`CallDetector`)."""
    return CallDetector(functions, style).feed(text, final=True)


# ---------------------------------------------------------------------------- execution

def run_with_timeout(func: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any],
                     timeout: float) -> Tuple[bool, Any]:
    """
    Call ``func`` in a daemon worker thread, waiting at most ``timeout`` seconds.

    Returns ``(True, value)``, or ``(False, short error text)`` when it raised or timed
    out (a timed-out call is abandoned, not killed).
    """
    outcome: Dict[str, Any] = {}

    def target():
        try:
            outcome['value'] = func(*args, **kwargs)
        except BaseException as exc:  # noqa: B902 - any failure becomes error text
            outcome['error'] = f'{type(exc).__name__}: {_short(exc)}'

    worker = threading.Thread(target=target, name='bot-function', daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return False, f'timed out after {timeout:g} s'
    if 'error' in outcome:
        return False, outcome['error']
    return True, outcome.get('value')


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
            timeout: float = DEFAULT_TIMEOUT, max_chars: int = MAX_RESULT_CHARS) -> str:
    """
    Run ``call`` and return its result as text; never raises.

    ``functions`` are the callable functions (default: the enabled ones). A malformed
    call, an unknown name, arguments that do not bind (checked before calling), an
    exception or a timeout (the function's own ``timeout`` if set, else ``timeout``)
    each give a short ``'error: ...'`` text for the model.
    """
    try:
        if call.error:
            return f'error: {call.error}'
        records = as_records(functions)
        func = find_record(call.name, records)
        if func is None:
            available = ', '.join(f.name for f in records) or 'none'
            return f'error: unknown function {_short(call.name, 80)!r}; available: {available}'
        try:
            bound = func.bind(call.args, call.kwargs)
        except TypeError as exc:
            return f'error: bad arguments for {func.name!r}: {_short(exc)}; {_usage(func)}'
        ok, value = run_with_timeout(func.func, bound.args, bound.kwargs,
                                     func.timeout if func.timeout else timeout)
        if not ok:
            return f'error: {func.name!r} failed: {value}'
        return result_to_text(value, max_chars)
    except Exception as exc:  # noqa: B902 - the generation loop must never see an exception
        return f'error: {type(exc).__name__}: {_short(exc)}'


def _tool_response_role(template: Any) -> Optional[str]:
    """Return the ``tool_response`` role text of a template (object, dict or built-in name)."""
    roles = getattr(template, 'roles', None)
    if isinstance(roles, dict):
        return roles.get('tool_response')
    if isinstance(template, dict):
        return template.get('tool_response', template.get('tool'))
    if isinstance(template, str):
        try:
            from ..chat.templates import BUILTIN_TEMPLATES
        except ImportError:  # the functions package used on its own
            return None
        return BUILTIN_TEMPLATES.get(template.lower(), {}).get('tool_response')
    return None


def format_result(call: ToolCall, result_text: str, template: Any = None) -> str:
    r"""
    Format a call's result for the chat.

    Python style: the inline text to insert right after the call, `` -> RESULT``.
    Template style: the content of the ``tool_response`` message. ``template`` is a chat
    template name, ``ChatTemplate`` or dict. For chat-ml-tools (Hermes/Qwen) the content
    is Hermes' ``{"name": ..., "content": ...}``, inside
    ``<tool_response>\n...\n</tool_response>`` unless the template's ``tool_response``
    role adds those tags itself (the built-in chat-ml-tools does). For other templates
    (e.g. llama-3.1's ``ipython`` role) it is the plain result text.
    """
    if call.style == 'python':
        return f' -> {result_text}'
    name = str(getattr(template, 'name', template) or '').lower()
    role = _tool_response_role(template) or ''
    if name in TOOL_RESPONSE_TAG_TEMPLATES or '<tool_response>' in role:
        body = json.dumps({'name': call.name, 'content': result_text})
        if '<tool_response>' in role:
            return body
        return f'<tool_response>\n{body}\n</tool_response>'
    return result_text

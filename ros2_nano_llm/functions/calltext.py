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
The text of one function call: the :class:`ToolCall` record and its safe parsers.

Model output is never ``eval``'d: python-style calls are parsed with ``ast.parse`` and
each argument node goes through ``ast.literal_eval``; template calls are bounded JSON.
"""

import ast
from dataclasses import dataclass, field
import json
import re
from typing import Any, Dict, List, Optional, Tuple

MAX_CALL_CHARS = 2000         # a python-style call still open after this many chars is dropped
MAX_TEMPLATE_CHARS = 8000     # same for a template call without its closing tag
MAX_JSON_CHARS = 65536        # JSON arguments longer than this are refused unparsed
MAX_JSON_DEPTH = 32           # and so is JSON nested deeper than this
_MAX_ERROR_CHARS = 200

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


def short(text: Any, limit: int = _MAX_ERROR_CHARS) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters."""
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


# ---------------------------------------------------------------------------- scanning

def scan_brackets(text: str, start: int, openers: str = '([{', closers: str = ')]}',
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
        call.error = f'malformed call {short(raw, 80)!r}: {short(getattr(exc, "msg", exc))}'
        return call
    node = tree.body
    name = _dotted_name(node.func) if isinstance(node, ast.Call) else None
    if name is None:
        call.error = f'not a function call by name: {short(raw, 80)!r}'
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
        call.error = f'bad arguments in {short(raw, 80)!r}: {exc}'
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
            call.error = f'malformed JSON in the arguments of {short(name, 80)!r}: {exc}'
            return [call]
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        call.error = f'the arguments of {short(name, 80)!r} must be a JSON object'
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
                         style='template', error=f'malformed JSON in tool call: {short(exc)}')]
    return _calls_from_json_value(value, raw, span)


def parse_json_call(name: str, args_json: str = '') -> ToolCall:
    """
    Make a call from a function name and JSON arguments (an object, or empty).

    Used by the node's ``~/call_function`` service; a malformed ``args_json``, or one too
    long or too deeply nested to parse safely (:func:`check_json`), gives a call with
    ``error`` set: it never raises.
    """
    args_json = args_json or ''
    shown = short(args_json.strip(), 200) or '{}'
    raw = f'{{"name": {json.dumps(short(name, 80))}, "arguments": {shown}}}'
    call = ToolCall(name=name, raw=raw, style='template')
    try:
        args = load_json(args_json) if args_json.strip() else {}
    except ValueError as exc:
        call.error = f'malformed JSON arguments: {short(exc)}'
        return call
    if not isinstance(args, dict):
        call.error = 'arguments must be a JSON object such as {"on": true}'
        return call
    call.kwargs = args
    return call

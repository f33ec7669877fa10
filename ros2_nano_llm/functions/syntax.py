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
Tool-call syntaxes: how a model writes a call, and how its result goes back.

Each chat template names one :class:`ToolSyntax` (``ChatTemplate.tool_syntax``). A syntax
declares, in one place:

* ``markers``: the text that opens a call in model output (none for python style, whose
  calls are found by the functions' names), ``closers`` (text that ends a call, so never a
  stop of the reply) and :meth:`ToolSyntax.complete`, which parses one call;
* the grammar of a call: ``args_key`` is the JSON key of the arguments for a marker syntax
  (``functions.grammar`` writes the grammar from it); python style is ``NAME(arg=VALUE)``;
* :meth:`ToolSyntax.format_result` and ``result_role``: a result goes back as the content of
  a ``tool_response`` turn, or inline as `` -> RESULT`` (python style);
* ``docs_spec``, ``prologue`` and ``epilogue``: how ``FunctionRegistry.generate_docs``
  describes the functions to the model.

A template with its own call syntax declares a new :class:`ToolSyntax` (here or in a
module of its own) and names it in its template dict (``'tool_syntax'``); nothing else
changes. The built-ins are in :data:`SYNTAXES`, each named for the template family that
writes it. Python-style calls are found with every template, as NanoLLM does.

The safety rule "a function name in prose is not a call" is :class:`PythonSyntax`'s: a
python-style ``NAME(...)`` is prose, and never runs, when it is

* inside an inline code span (after an odd number of backticks on its line) or a fenced
  code block (between lines that start with three backticks), or
* inside double quotes (an odd number of ``"``, ``“`` or ``”`` before it on its line), or
  right after a quote or backtick (``'NAME(``, ```NAME(``).

So "You can use the \`move_forward()\`" and a code example do not move the robot, while
NanoLLM's inline calls in running text (``The time is TIME()``) still run. Calls in a
template's marker syntax (``<tool_call>``, ``<|python_tag|>``) are not subject to it.
"""

from abc import ABC, abstractmethod
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .calltext import (MAX_CALL_CHARS, MAX_TEMPLATE_CHARS, parse_json_calls,
                       parse_python_call, scan_brackets, short, ToolCall)

PYTHON_PROLOGUE = (
    'You are able to call the Python functions defined below, and the returned values '
    'will be added to the chat:\n\n')
PYTHON_EPILOGUE = (
    '\n\nTo call a function, write its name and arguments in Python syntax, for example '
    '{example}, and its result will follow it.')
JSON_PROLOGUE = (
    'You may call one or more functions to assist with the user query. '
    'Function signatures are within <tools></tools> XML tags:\n<tools>\n')
JSON_EPILOGUE = (
    '\n</tools>\n\nFor each function call, return a json object with function name and '
    'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n'
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')

# a call's result as free text must never look like one (the grammar keeps them out)
_QUOTES = '"\u201c\u201d'
_OPENERS = '\'"`\u2018\u201c'


class ToolSyntax(ABC):
    """
    One way of writing a tool call and of feeding its result back (see module docstring).

    ``complete(text, start, final)`` parses the call whose marker starts at ``start``.
    """

    name: str = ''
    markers: Tuple[str, ...] = ()     # text that opens a call (python style: none)
    closers: Tuple[str, ...] = ()     # text that ends a call: never a stop for the reply
    args_key: Optional[str] = None    # JSON key of the arguments (None: python style)
    result_role: Optional[str] = 'tool_response'  # None: the result goes inline
    docs_spec: str = 'json'           # FunctionRegistry.generate_docs's spec
    prologue: str = JSON_PROLOGUE
    epilogue: str = JSON_EPILOGUE

    def __repr__(self) -> str:
        """Return ``ToolSyntax('name')``."""
        return f'{type(self).__name__}({self.name!r})'

    @abstractmethod
    def complete(self, text: str, start: int,
                 final: bool) -> Tuple[List[ToolCall], Optional[int]]:
        """
        Parse the call opening at ``start``: ``(calls, end)``, or ``([], None)`` if open.

        ``final`` means the text is finished: a call still open is reported (with an
        error unless the syntax allows the end of text to close it).
        """

    def format_result(self, call: ToolCall, result: str) -> str:
        """Return the result of a template-style ``call`` as the chat should hold it."""
        return result


class PythonSyntax(ToolSyntax):
    """NanoLLM's python style: ``NAME(args)`` in the text, its result inline after it."""

    name = 'python'
    result_role = None
    docs_spec = 'python'
    prologue = PYTHON_PROLOGUE
    epilogue = PYTHON_EPILOGUE

    def complete(self, text, start, final):
        """Parse ``NAME(...)`` once its parentheses balance (strings may hold some)."""
        open_idx = text.index('(', start)
        # scan no further than the limit, so a whole text and a stream agree
        status, end = scan_brackets(text[:start + MAX_CALL_CHARS], open_idx)
        if status == 'complete':
            return [parse_python_call(text[start:end], (start, end))], end
        name = text[start:open_idx]
        if status == 'broken':
            raw = text[start:end]
            return [ToolCall(name=name, raw=raw, span=(start, end), error=(
                f'malformed call {short(raw, 80)!r}: unbalanced brackets or quotes'))], end
        if final or len(text) - start > MAX_CALL_CHARS:
            end = min(len(text), start + MAX_CALL_CHARS)
            return [ToolCall(name=name, raw=text[start:end], span=(start, end), error=(
                f'the call to {name!r} was never closed with ")"'))], end
        return [], None

    def format_result(self, call: ToolCall, result: str) -> str:
        """Return `` -> RESULT`` for a python-style call, else the plain result text."""
        return f' -> {result}' if call.style == 'python' else result


class ProseState:
    """
    Where a text ends, for the prose rule: in a fenced block, a code span, quotes.

    :meth:`advance` reads text once, in pieces; :meth:`is_prose` says whether a
    python-style call starting right after that text is prose (see module docstring).
    """

    def __init__(self) -> None:
        self.fence = False   # inside a fenced code block
        self.ticks = 0       # backticks so far on this line
        self.quotes = 0      # double quotes so far on this line
        self.head = ''       # the line's first (up to 3) characters after indentation
        self.last = '\n'     # the last character read

    def copy(self) -> 'ProseState':
        """Return an independent copy."""
        other = ProseState()
        other.__dict__.update(self.__dict__)
        return other

    def advance(self, text: str) -> None:
        """Read ``text``, the next piece of the reply."""
        for ch in text:
            if ch == '\n':
                if self.head.startswith('```'):
                    self.fence = not self.fence
                self.ticks = self.quotes = 0
                self.head = ''
            else:
                if len(self.head) < 3 and (self.head or not ch.isspace()):
                    self.head += ch
                if ch == '`':
                    self.ticks += 1
                elif ch in _QUOTES:
                    self.quotes += 1
            self.last = ch

    def is_prose(self) -> bool:
        """Return whether a python-style call starting here is prose, not a call."""
        return (self.fence or self.head.startswith('```') or self.ticks % 2 == 1
                or self.quotes % 2 == 1 or self.last in _OPENERS)


class HermesSyntax(ToolSyntax):
    """
    Hermes/Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.

    Results are Hermes' ``{"name": ..., "content": ...}``, inside ``<tool_response>`` tags
    unless ``tagged_role`` says the template's ``tool_response`` role adds them itself.
    """

    markers = ('<tool_call>',)
    closers = ('</tool_call>',)
    args_key = 'arguments'

    def __init__(self, name: str, tagged_role: bool):
        self.name = name
        self.tagged_role = tagged_role

    def complete(self, text, start, final):
        """Parse the JSON up to ``</tool_call>`` (or the end of a finished text)."""
        opening, closing = self.markers[0], self.closers[0]
        body = start + len(opening)
        close = text.find(closing, body, start + MAX_TEMPLATE_CHARS)
        if close >= 0:
            end = close + len(closing)
            return parse_json_calls(text[body:close], text[start:end], (start, end)), end
        if final or len(text) - start > MAX_TEMPLATE_CHARS:
            end = min(len(text), start + MAX_TEMPLATE_CHARS)
            calls = parse_json_calls(text[body:end], text[start:end], (start, end))
            if end < len(text):
                for call in calls:
                    call.error = call.error or f'{opening} was never closed'
            return calls, end
        return [], None

    def format_result(self, call: ToolCall, result: str) -> str:
        """Return Hermes' JSON result, in ``<tool_response>`` tags unless the role has them."""
        body = json.dumps({'name': call.name, 'content': result})
        return body if self.tagged_role else f'<tool_response>\n{body}\n</tool_response>'


class Llama31Syntax(ToolSyntax):
    """
    llama-3.1: ``<|python_tag|>`` then ``{"name": ..., "parameters": {...}}`` or tool code.

    A call is complete when its JSON object closes, or at ``<|eom_id|>``/``<|eot_id|>`` or
    the end of the text; results are the plain text of the ``ipython`` role.
    """

    name = 'llama-3.1'
    markers = ('<|python_tag|>',)
    args_key = 'parameters'
    ends = ('<|eom_id|>', '<|eot_id|>')
    prologue = ('You may call the functions below. To call one, write <|python_tag|> '
                'followed by a JSON object {"name": <function-name>, "parameters": '
                '<args-json-object>}:\n')
    epilogue = ''

    def complete(self, text, start, final):
        """Parse the JSON object or tool code after ``<|python_tag|>``."""
        body = start + len(self.markers[0])
        limit = start + MAX_TEMPLATE_CHARS
        first = body
        while first < len(text) and text[first].isspace():
            first += 1
        stop = min([i for i in (text.find(t, body, limit) for t in self.ends) if i >= 0],
                   default=-1)
        if stop < 0 and len(text) > limit:
            stop = limit   # never finished: give up here, the model hears an error
        elif stop < 0 and final:
            stop = len(text)
        if first < len(text) and text[first] == '{':    # custom tool: JSON
            status, end = scan_brackets(text[:limit], first, '{[', '}]', '"')
            if status == 'incomplete' or (stop >= 0 and end > stop):
                if stop < 0:
                    return [], None
                end = stop
            return parse_json_calls(text[first:end], text[start:end], (start, end)), end
        paren = text.find('(', first, stop if stop >= 0 else len(text))
        if paren >= 0:                        # built-in tool code: NAME.call(...)
            status, end = scan_brackets(text[:limit], paren)
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


PYTHON = PythonSyntax()
HERMES = HermesSyntax('hermes', tagged_role=False)
CHAT_ML_TOOLS = HermesSyntax('chat-ml-tools', tagged_role=True)
LLAMA_31 = Llama31Syntax()

# the built-in syntaxes by name (a template dict's 'tool_syntax' names one of these)
SYNTAXES: Mapping[str, ToolSyntax] = {
    s.name: s for s in (PYTHON, HERMES, CHAT_ML_TOOLS, LLAMA_31)}

# the syntaxes whose calls are found in every reply (the template's own is added)
DETECTED: Tuple[ToolSyntax, ...] = (PYTHON, HERMES, LLAMA_31)


def syntax_named(name: str) -> ToolSyntax:
    """Return the built-in syntax ``name``; raise ``ValueError`` for an unknown one."""
    try:
        return SYNTAXES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f'unknown tool syntax {name!r}; use one of '
                         f'{", ".join(SYNTAXES)}') from None


def infer_syntax(tool_call: Optional[str] = None,
                 tool_response: Optional[str] = None) -> ToolSyntax:
    """
    Return the syntax of a template that names none, from its own markup.

    For template files and dicts written before ``tool_syntax`` existed: the markers in
    its ``tool_call`` regex, and whether its ``tool_response`` role adds the
    ``<tool_response>`` tags (then Hermes' JSON results go inside it).
    """
    if tool_response and '<tool_response>' in tool_response:
        return CHAT_ML_TOOLS
    for syntax in (HERMES, LLAMA_31):
        if tool_call and any(m in tool_call for m in syntax.markers):
            return syntax
    return PYTHON


def syntax_of(template: Any) -> ToolSyntax:
    """
    Return the tool syntax of ``template``.

    ``template`` is a :class:`ToolSyntax`, ``None`` (python style), a syntax name (see
    :data:`SYNTAXES`; any other name gives python style), a template dict (its
    ``tool_syntax``, else :func:`infer_syntax`) or a ``ChatTemplate`` (its ``tool_syntax``).
    """
    if template is None:
        return PYTHON
    if isinstance(template, ToolSyntax):
        return template
    if isinstance(template, str):
        return SYNTAXES.get(template.lower(), PYTHON)
    if isinstance(template, Mapping):
        named = template.get('tool_syntax')
        if isinstance(named, ToolSyntax):
            return named
        if named:
            return syntax_named(named)
        return infer_syntax(template.get('tool_call'),
                            template.get('tool_response', template.get('tool')))
    return template.tool_syntax


def detected_syntaxes(own: Optional[ToolSyntax] = None) -> Tuple[ToolSyntax, ...]:
    """Return the syntaxes to find calls in: :data:`DETECTED` plus a template's own."""
    if own is None or any(own.markers == s.markers for s in DETECTED):
        return DETECTED
    return DETECTED + (own,)


def marker_regex(syntaxes: Sequence[ToolSyntax]) -> Tuple[Optional[Any], Dict[str, Any]]:
    """Return a regex of every marker of ``syntaxes`` and a marker -> syntax map."""
    by_marker = {m: s for s in syntaxes for m in s.markers}
    if not by_marker:
        return None, by_marker
    ordered = sorted(by_marker, key=len, reverse=True)
    return re.compile('|'.join(re.escape(m) for m in ordered)), by_marker


__all__ = ['CHAT_ML_TOOLS', 'DETECTED', 'HERMES', 'HermesSyntax', 'LLAMA_31', 'Llama31Syntax',
           'PYTHON', 'ProseState', 'PythonSyntax', 'SYNTAXES', 'ToolSyntax',
           'detected_syntaxes', 'infer_syntax', 'marker_regex', 'syntax_named', 'syntax_of']

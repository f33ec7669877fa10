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
Grammars (llguidance's Lark dialect) for the calls of the registered bot functions.

The grammar follows each function's argument schema (``BotFunction.schema``: types from
the type hints, ``minimum``/``maximum``, ``enum``, ``maxLength``, defaults) and the chat
template's :class:`~.syntax.ToolSyntax`:

* python style (``args_key`` None): ``NAME(arg=VALUE, ...)``, every argument by keyword
  (required ones in order, then any optional ones), values as Python literals (``True``,
  ``1.5``, ``"text"``), so a call always binds;
* a marker syntax: its marker, ``{"name": NAME, ARGS_KEY: {...}}`` and its closer, e.g.
  ``<tool_call>{"name": NAME, "arguments": {...}}</tool_call>`` (chat-ml-tools, Hermes,
  Qwen) or ``<|python_tag|>{"name": NAME, "parameters": {...}}`` (llama-3.1).

The names ``'python'``, ``'tool_call'`` and ``'python_tag'`` are taken for those three.

:func:`call_grammar` with ``free_text=False`` is a reply that is one call (OpenAI's
``tool_choice='required'`` or a function's name); with ``free_text=True`` any text, where
each call the model starts (python ``NAME(``, ``<tool_call>``, ``<|python_tag|>``) must be
completed as a valid call (``'auto'``), except where the prose rule of the call detector
says a python-style name is not a call (after a backtick or a quote). Free text never
holds a result marker (`` -> ``, ``) ->`` or ``<tool_response>``): only a call that really
ran gets a result in the chat. :func:`prose_grammar` is free text in which no call can open
at all: what follows the one call of a reply whose call was required.

No llguidance import here: this module only writes grammar text
(``ros2_nano_llm.constraints`` compiles it).
"""

import json
from typing import Any, Dict, List, Sequence

from .syntax import DETECTED, HERMES, LLAMA_31, PYTHON, syntax_of, ToolSyntax

# the call syntaxes by their grammar names (older callers pass these)
SYNTAXES = {'python': PYTHON, 'tool_call': HERMES, 'python_tag': LLAMA_31}
# result markers as regexes: `` -> `` (python-style results), ``NAME(...) ->`` and a
# tool_response turn; free text never holds them, so a result is always a real one
RESULT_MARKERS = (r' -> ', r'\)[ \t]*->', r'<tool_response>')
# JSON as a model is shown it: fixed separators, so every reply has a bounded length
_JSON_STYLE = {'whitespace_flexible': False, 'item_separator': ', ', 'key_separator': ': '}
_BOUNDS = ('minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum')
_INT = r'/-?(0|[1-9][0-9]{0,17})/'
_FLOAT = r'/-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,15})?/'
_ANY_LITERAL = f'{_FLOAT} | %json {{"type": "string"}} | "True" | "False" | "None"'


def call_syntax(template: Any) -> ToolSyntax:
    """Return the call syntax of a chat template (see :func:`.syntax.syntax_of`)."""
    return syntax_of(template)


def _lit(text: str) -> str:
    """Return ``text`` as a Lark string literal."""
    return json.dumps(text)


def _json(schema: Dict[str, Any]) -> str:
    return '%json ' + json.dumps({**schema, 'x-guidance': _JSON_STYLE})


def python_value(schema: Dict[str, Any], nullable: bool = False) -> str:
    """Return a Lark expression for a Python literal of the JSON ``schema`` of one argument."""
    kind = schema.get('type')
    if 'enum' in schema:
        options = [_python_literal(v) for v in schema['enum']]
    elif kind == 'boolean':
        options = ['"True"', '"False"']
    elif kind in ('integer', 'number') and not any(k in schema for k in _BOUNDS):
        options = [_INT if kind == 'integer' else _FLOAT]  # plain literals, no exponent
    elif kind in ('integer', 'number', 'string'):
        keys = ('type', 'minLength', 'maxLength', 'pattern') + _BOUNDS
        options = [_json({k: schema[k] for k in keys if k in schema})]
    elif kind in ('array', 'object'):
        # JSON lists of numbers and strings are Python literals too
        options = [_json({k: v for k, v in schema.items() if k != 'description'})]
    else:
        options = [_ANY_LITERAL]
    if nullable and '"None"' not in options:
        options.append('"None"')
    return '(' + ' | '.join(options) + ')'


def _python_literal(value: Any) -> str:
    if value is None:
        return '"None"'
    if isinstance(value, bool):
        return _lit(str(value))
    return _lit(json.dumps(value) if isinstance(value, str) else repr(value))


def _python_args(record: Any) -> str:
    """Return a Lark expression for the keyword arguments of one function."""
    schema = record.schema or {}
    props: Dict[str, Any] = schema.get('properties') or {}
    required = [n for n in props if n in (schema.get('required') or [])]
    optional = [n for n in props if n not in required]

    def arg(name: str) -> str:
        prop = props[name]
        nullable = name in optional and prop.get('default', 0) is None
        return f'{_lit(name + "=")} {python_value(prop, nullable)}'

    def tail(names: Sequence[str]) -> str:
        return ' '.join(f'({_lit(", ")} {arg(n)})?' for n in names)

    if required:
        head = f' {_lit(", ")} '.join(arg(n) for n in required)
        return f'{head} {tail(optional)}'.strip()
    if not optional:
        return ''
    # no required argument: any subset of the optional ones, in order
    firsts = [f'{arg(n)} {tail(optional[i + 1:])}'.strip() for i, n in enumerate(optional)]
    return '(' + ' | '.join(firsts) + ')?'


def _json_call_schema(records: Sequence[Any], args_key: str) -> Dict[str, Any]:
    options = []
    for record in records:
        args = dict(record.schema or {'type': 'object', 'properties': {}})
        args.setdefault('type', 'object')
        args['additionalProperties'] = False
        args.pop('description', None)
        options.append({'type': 'object', 'properties': {
            'name': {'const': record.name}, args_key: args},
            'required': ['name', args_key], 'additionalProperties': False})
    return options[0] if len(options) == 1 else {'anyOf': options}


def _bodies(records: Sequence[Any], syntax: Any) -> List[tuple]:
    """Return ``(trigger, rest)`` pairs: the call's opening and a Lark expression after it."""
    if isinstance(syntax, str):
        if syntax not in SYNTAXES:
            raise ValueError(f'unknown call syntax {syntax!r}; use one of '
                             f'{", ".join(SYNTAXES)} or a ToolSyntax')
        syntax = SYNTAXES[syntax]
    if syntax.args_key is None:
        return [(f'{r.name}(', f'{_python_args(r)} {_lit(")")}'.strip()) for r in records]
    body = _json(_json_call_schema(records, syntax.args_key))
    if syntax.closers:
        body = f'"\\n"? {body} "\\n"? {_lit(syntax.closers[0])}'
    return [(syntax.markers[0], body)]


def _opening(trigger: str, special_tokens: Sequence[str]) -> str:
    # a trigger that is one special token of the vocabulary is matched as that token
    return trigger if trigger in special_tokens else _lit(trigger)


def call_grammar(records: Sequence[Any], syntax: Any, free_text: bool = False,
                 special_tokens: Sequence[str] = (),
                 syntaxes: Sequence[ToolSyntax] = DETECTED) -> str:
    """
    Return a Lark grammar for calls of ``records`` (``BotFunction``) in ``syntax``.

    ``syntax`` is a ``ToolSyntax`` or one of the names in :data:`SYNTAXES`.
    ``free_text=False``: the whole reply is one call. ``free_text=True``: any text, with
    every call the model starts (in any of ``syntaxes``) completed as a valid call.
    ``special_tokens`` are the triggers that are one special token in the vocabulary.
    """
    if not records:
        raise ValueError('no functions to call: give at least one bot function')
    if not free_text:
        calls = [f'{_opening(t, special_tokens)} {rest}' for t, rest in _bodies(records, syntax)]
        return '%llguidance {}\nstart: ' + ' | '.join(f'({c})' for c in calls) + '\n'
    pairs = [p for s in syntaxes for p in _bodies(records, s)]
    # as the call detector: NAME( inside a word, a method (.NAME(), a definition (def NAME()
    # or right after a quote or backtick (prose) is not a call (not_call), so the text goes
    # on freely there
    names = '|'.join(_regex_escape(r.name) for r in records)
    lines = ['%llguidance {}',
             'start: (' + ' | '.join(['not_call'] + [f'call_{i}' for i in range(len(pairs))])
             + ')* TEXT',
             # free text that never holds a result marker (only a real call gets a result)
             'TEXT: /(?s:.*)/ & ~/(?s:.*)(' + '|'.join(RESULT_MARKERS) + ')(?s:.*)/',
             f'not_call[lazy]: TEXT /(def |[.A-Za-z0-9_`\'"\u2018\u201c])({names})\\(/']
    for i, (trigger, rest) in enumerate(pairs):
        if trigger in special_tokens:
            lines.append(f'call_{i}: TEXT {trigger} {rest}')
        else:
            lines.append(f'call_{i}_open[lazy]: TEXT {_lit(trigger)}')
            lines.append(f'call_{i}: call_{i}_open {rest}')
    return '\n'.join(lines) + '\n'


def prose_grammar(records: Sequence[Any], syntaxes: Sequence[ToolSyntax] = DETECTED) -> str:
    """
    Return a Lark grammar of free text in which no call of ``records`` can open.

    No listed name followed by ``(`` (anywhere, in prose too), no call marker of
    ``syntaxes`` (a marker that is a special token never appears in free text) and no
    result marker: the text after a required call's result, so that reply makes one call.
    """
    if not records:
        raise ValueError('no functions to call: give at least one bot function')
    names = '|'.join(_regex_escape(r.name) for r in records)
    markers = [_regex_escape(m) for s in syntaxes for m in s.markers]
    banned = '|'.join([f'({names})\\(', *markers, *RESULT_MARKERS])
    return ('%llguidance {}\nstart: TEXT\n'
            f'TEXT: /(?s:.*)/ & ~/(?s:.*)({banned})(?s:.*)/\n')


def _regex_escape(text: str) -> str:
    """Escape ``text`` for a ``/.../`` regex of llguidance (Rust regex syntax)."""
    return ''.join('\\' + ch if ch in '\\.+*?()|[]{}^$/' else ch for ch in text)


def response_grammar(response_format: Dict[str, Any]) -> tuple:
    """
    Return ``(kind, text)`` of a structured-output ``response_format``.

    ``{'type': 'json_schema', 'json_schema': {'schema': {...}}}`` (OpenAI's form; a bare
    ``{'schema': ...}`` or the schema itself under ``json_schema`` is taken too),
    ``{'type': 'json_object'}``, ``{'type': 'regex', 'regex': '...'}``, or
    ``{'type': 'grammar', 'grammar': '...'}`` (Lark/EBNF in llguidance's dialect, or GBNF).
    ``kind`` is ``'json_schema'``, ``'regex'`` or ``'grammar'``. Raises ``ValueError``
    for anything else.
    """
    if not isinstance(response_format, dict):
        raise ValueError(f'response_format must be a dict such as {{"type": "json_schema", '
                         f'"json_schema": {{"schema": {{...}}}}}}, got {response_format!r}')
    kind = response_format.get('type')
    if kind == 'json_schema':
        spec = response_format.get('json_schema')
        if not isinstance(spec, dict):
            raise ValueError("response_format 'json_schema' needs a 'json_schema' dict "
                             "holding the 'schema'")
        schema = spec.get('schema', spec)
        if not isinstance(schema, (dict, bool)):
            raise ValueError(f'the JSON schema must be an object, got {schema!r}')
        return 'json_schema', schema
    if kind == 'json_object':
        return 'json_schema', {'type': 'object'}
    if kind in ('regex', 'grammar'):
        text = response_format.get(kind)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"response_format of type '{kind}' needs the {kind} text under "
                             f"'{kind}'")
        return kind, text
    raise ValueError(f"unknown response_format type {kind!r}; use 'json_schema', "
                     "'json_object', 'regex' or 'grammar'")

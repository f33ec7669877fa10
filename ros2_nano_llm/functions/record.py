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
FunctionRecord: one function the model may call (name, callable, docs, argument schema).

Only data and argument checks live here; the parsing of calls (``parsing.py``) and the
registry (``registry.py``) build on it, so neither needs the other.
"""

from dataclasses import dataclass, field
import inspect
import re
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

# Python type -> JSON schema type name, for the argument schema and for type checks.
_JSON_TYPES = {bool: 'boolean', int: 'integer', float: 'number', str: 'string',
               list: 'array', tuple: 'array', dict: 'object'}

NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')

# The JSON schema keywords a FunctionRecord's ``limits`` may use.
LIMIT_KEYS = ('minimum', 'maximum', 'enum')


def limit_problem(limit: Dict[str, Any], value: Any) -> str:
    """Return why ``value`` breaks ``limit`` (``minimum``/``maximum``/``enum``), or ''."""
    if value is None or not limit:
        return ''
    if 'enum' in limit and value not in limit['enum']:
        return f'must be one of {list(limit["enum"])}, got {value!r}'
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ('minimum' in limit or 'maximum' in limit) and not number:
        return f'must be a number, got {value!r}'
    if number and value != value:
        return 'must be a number, got NaN'
    if 'minimum' in limit and value < limit['minimum']:
        return f'must be at least {limit["minimum"]}, got {value!r}'
    if 'maximum' in limit and value > limit['maximum']:
        return f'must be at most {limit["maximum"]}, got {value!r}'
    return ''


def _unwrap_optional(annotation: Any) -> Any:
    """Return ``X`` for ``Optional[X]``, else the annotation unchanged."""
    if typing.get_origin(annotation) is Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _base_type(annotation: Any) -> Any:
    """Return the plain Python type behind an annotation (``List[int]`` -> ``list``)."""
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    return origin if origin is not None else annotation


def _type_name(annotation: Any) -> str:
    """Return a short readable name of an annotation (``float``, ``list``)."""
    base = _base_type(annotation)
    return getattr(base, '__name__', str(base))


def _first_paragraph(doc: Optional[str]) -> str:
    """Return the first paragraph of a docstring on one line."""
    if not doc:
        return ''
    text = inspect.cleandoc(doc).split('\n\n')[0]
    return ' '.join(text.split())


def _arg_docs_from_docstring(doc: Optional[str]) -> Dict[str, str]:
    """Read a Google-style ``Args:`` section into ``{name: description}``."""
    out: Dict[str, str] = {}
    if not doc:
        return out
    lines = inspect.cleandoc(doc).splitlines()
    in_args = False
    current = None
    for line in lines:
        stripped = line.strip()
        if stripped in ('Args:', 'Arguments:', 'Parameters:'):
            in_args = True
            continue
        if not in_args:
            continue
        if not stripped or (not line.startswith(' ') and stripped.endswith(':')):
            if out:
                break
            continue
        match = re.match(r'^\s+(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)$', line)
        if match and (current is None or len(line) - len(line.lstrip()) <= 4):
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current is not None:
            out[current] = (out[current] + ' ' + stripped).strip()
    return out


@dataclass(eq=False)  # compared and hashed by identity
class FunctionRecord:
    """
    One function the model may call (``registry.BotFunction`` adds NanoLLM's calling style).

    ``signature`` is what calls are bound against; ``schema`` is the JSON schema of
    the arguments (an OpenAI ``parameters`` object). ``testable=False`` keeps
    :meth:`FunctionRegistry.test` from calling it (functions with side effects, e.g. robot
    actions). ``timeout`` (seconds), when set, is used by ``execute()`` instead of its
    default.

    ``limits`` bound arguments: ``{arg: {'minimum': lo, 'maximum': hi}}`` for numbers,
    ``{arg: {'enum': [choices]}}`` for strings. They go into ``schema`` (so constrained
    decoding can only write values in range) and :meth:`bind` checks them again, whatever
    the call's source. ``confirm=True`` marks a call an operator must approve before it runs.
    """

    name: str
    func: Callable[..., Any]
    docs: str = ''
    enabled: bool = True
    signature: Optional[inspect.Signature] = None
    schema: Dict[str, Any] = field(default_factory=dict)
    arg_docs: Dict[str, str] = field(default_factory=dict)
    testable: bool = True
    timeout: Optional[float] = None
    source: str = 'python'
    limits: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    confirm: bool = False

    @classmethod
    def create(cls, func: Callable[..., Any], name: Optional[str] = None,
               docs: Optional[str] = None, enabled: bool = True, **fields) -> 'FunctionRecord':
        """
        Make the record of ``func``, checking it.

        ``name`` defaults to the function's name and must be a Python identifier; ``docs``
        defaults to the docstring's first paragraph, ``arg_docs`` to its ``Args:`` section.
        ``fields`` set the other fields (``testable``, ``timeout``, ``source``, ...).
        Raises ValueError for a non-callable or a bad name.
        """
        if not callable(func):
            raise ValueError(f'bot function must be callable, got {func!r}')
        name = name or getattr(func, '__name__', None)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f'bot function name {name!r} must be a Python identifier '
                             f'(letters, digits, underscore)')
        doc = getattr(func, '__doc__', None)
        arg_docs = _arg_docs_from_docstring(doc)
        arg_docs.update(fields.pop('arg_docs', None) or {})
        if docs is None:
            docs = _first_paragraph(doc)
        return cls(name=name, func=func, docs=' '.join(str(docs).split()), enabled=enabled,
                   arg_docs=arg_docs, **fields)

    def __post_init__(self):
        if self.signature is None:
            self.signature = inspect.signature(self.func)
        names = {p.name for p in self._params()}
        for arg, limit in self.limits.items():
            unknown = set(limit) - set(LIMIT_KEYS)
            if arg not in names or unknown:
                raise ValueError(f'limits of {self.name!r}: no argument {arg!r}' if arg not in
                                 names else f'limits of {self.name}({arg}): unknown {unknown}')
        if not self.schema:
            self.schema = self._build_schema()
        elif self.limits:  # a given schema states the limits too (a copy: the caller's stays)
            props = {n: dict(p) for n, p in (self.schema.get('properties') or {}).items()}
            for arg, limit in self.limits.items():
                props.setdefault(arg, {}).update(limit)
            self.schema = {**self.schema, 'properties': props}

    @property
    def function(self) -> Callable[..., Any]:
        """Return the wrapped callable (NanoLLM's name for it)."""
        return self.func

    @property
    def required_args(self) -> List[str]:
        """Return the names of the arguments that have no default."""
        return [p.name for p in self._params() if p.default is inspect.Parameter.empty]

    def _params(self) -> List[inspect.Parameter]:
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return [p for p in self.signature.parameters.values() if p.kind not in kinds]

    def _hints(self) -> Dict[str, Any]:
        hints = {}
        for param in self._params():
            if param.annotation is not inspect.Parameter.empty:
                hints[param.name] = param.annotation
        try:
            resolved = typing.get_type_hints(self.func)
        except Exception:  # noqa: B902 - string annotations that cannot resolve stay as they are
            resolved = {}
        for name in hints:
            if name in resolved:
                hints[name] = resolved[name]
        return hints

    def _build_schema(self) -> Dict[str, Any]:
        hints = self._hints()
        properties: Dict[str, Any] = {}
        required: List[str] = []
        for param in self._params():
            prop: Dict[str, Any] = {}
            json_type = _JSON_TYPES.get(_base_type(hints.get(param.name)))
            if json_type:
                prop['type'] = json_type
            if self.arg_docs.get(param.name):
                prop['description'] = self.arg_docs[param.name]
            if param.default is inspect.Parameter.empty:
                required.append(param.name)
            elif param.default is None or isinstance(param.default, (bool, int, float, str)):
                prop['default'] = param.default
            prop.update(self.limits.get(param.name, {}))
            properties[param.name] = prop
        return {'type': 'object', 'properties': properties, 'required': required}

    def bind(self, args: Sequence[Any] = (), kwargs: Optional[Dict[str, Any]] = None):
        """
        Bind call arguments to the signature, checking simple types.

        Returns the ``inspect.BoundArguments`` (ints given for ``float`` arguments are
        converted). Raises ``TypeError`` with a short message for a missing, extra or
        wrongly typed argument, so nothing is called with bad input.
        """
        bound = self.signature.bind(*args, **(kwargs or {}))
        hints = self._hints()
        for name, value in list(bound.arguments.items()):
            expected = _base_type(hints.get(name))
            if expected not in _JSON_TYPES or value is None:
                continue
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                bound.arguments[name] = float(value)
                continue
            if expected is int and isinstance(value, bool):
                ok = False
            elif expected is tuple:
                ok = isinstance(value, (list, tuple))
            else:
                ok = isinstance(value, expected)
            if not ok:
                raise TypeError(f'argument {name!r} must be {expected.__name__}, '
                                f'got {type(value).__name__} {value!r}')
        for name, value in bound.arguments.items():
            problem = limit_problem(self.arg_limits(name), value)
            if problem:
                raise TypeError(f'argument {name!r} {problem}')
        return bound

    def arg_limits(self, name: str) -> Dict[str, Any]:
        """
        Return the bounds of argument ``name`` as its schema states them (``minimum``, ...).

        The schema is what constrained decoding follows and what the model is shown, so
        :meth:`bind` checks exactly that: ``limits``, and bounds written into the schema by
        whoever made the record (a ROS request field's integer range).
        """
        prop = (self.schema.get('properties') or {}).get(name) or {}
        return {k: prop[k] for k in LIMIT_KEYS if k in prop}

    def signature_text(self) -> str:
        """Return ``NAME(arg: type, opt: type = default)`` as the model should call it."""
        hints = self._hints()
        parts = []
        for param in self._params():
            text = param.name
            if param.name in hints:
                text += f': {_type_name(hints[param.name])}'
            if param.default is not inspect.Parameter.empty:
                text += f' = {param.default!r}'
            parts.append(text)
        return f'{self.name}({", ".join(parts)})'

    def example_call(self) -> str:
        """Return an example call with placeholder literals, e.g. ``MOVE(distance=1.0)``."""
        samples = {bool: 'True', int: '1', float: '1.0', str: "'text'", list: '[]', dict: '{}'}
        hints = self._hints()
        args = [f'{n}={samples.get(_base_type(hints.get(n)), "...")}' for n in self.required_args]
        return f'{self.name}({", ".join(args)})'

    def limits_text(self, name: str) -> str:
        """
        Return the ``limits`` of argument ``name`` as the model reads them, or ''.

        (A bound that is only a request field's integer type, such as int64's, is in the
        schema but not worth the model's context.)
        """
        limit = self.limits.get(name) or {}
        if 'enum' in limit:
            return 'one of ' + ', '.join(repr(v) for v in limit['enum'])
        low, high = limit.get('minimum'), limit.get('maximum')
        if low is not None and high is not None:
            return f'from {low} to {high}'
        if low is not None:
            return f'at least {low}'
        return f'at most {high}' if high is not None else ''

    def doc_line(self) -> str:
        """Return the python-style docs line ``NAME(args) - docs`` (with argument bounds)."""
        line = self.signature_text()
        described = []
        for param in self._params():
            text = ', '.join(t for t in (self.arg_docs.get(param.name),
                                         self.limits_text(param.name)) if t)
            if text:
                described.append(f'{param.name}: {text}')
        docs = self.docs
        if described:
            docs = (docs + ' ' if docs else '') + f'({"; ".join(described)})'
        return f'{line} - {docs}' if docs else line

    def tool_schema(self) -> Dict[str, Any]:
        """Return the OpenAI tool schema ``{'type': 'function', 'function': {...}}``."""
        return {'type': 'function', 'function': {
            'name': self.name, 'description': self.docs, 'parameters': self.schema}}


def as_records(functions: Any) -> List['FunctionRecord']:
    """
    Return the records of ``functions``: records, or callables registered as bot functions.

    ``functions`` is any iterable of them; a registry object iterates over its enabled
    functions, so it can be passed as it is. ``None`` gives no functions. Raises ValueError
    for an item that is not a bot function.
    """
    out = []
    for func in functions or ():
        record = func if isinstance(func, FunctionRecord) else getattr(
            func, '__bot_function__', None)
        if not isinstance(record, FunctionRecord):
            raise ValueError(f'{func!r} is not a bot function; register it with '
                             f'@bot_function or FunctionRegistry.register()')
        out.append(record)
    return out


def find_record(name: str, functions: Any) -> Optional['FunctionRecord']:
    """Return the record called ``name`` among ``functions`` (see :func:`as_records`)."""
    for record in as_records(functions):
        if record.name == name:
            return record
    return None

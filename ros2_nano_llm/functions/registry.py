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
The bot function registry: ``@bot_function`` and ``BotFunctions`` (NanoLLM's API).

A bot function is a Python callable the model may call. Each one is kept as a
:class:`BotFunction` record (name, callable, docs, enabled flag, signature and a JSON
schema of its arguments built from type hints and defaults). :class:`BotFunctions` is
the process-wide registry; calling it returns the list of enabled functions::

    @bot_function
    def TIME():
        '''Returns the current time.'''

    system_prompt = 'You are a helpful robot.' + BotFunctions.generate_docs()
    reply = model.generate(prompt, functions=BotFunctions())

The registry is guarded by a lock, because the ROS node registers and calls functions
from its worker and executor threads. No torch and no rclpy here.
"""

from dataclasses import dataclass, field
import fnmatch
import importlib
import inspect
import json
import re
import threading
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

# Python type -> JSON schema type name, for the argument schema and for type checks.
_JSON_TYPES = {bool: 'boolean', int: 'integer', float: 'number', str: 'string',
               list: 'array', tuple: 'array', dict: 'object'}

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

SPECS = ('python', 'json', 'openai')

_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


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
class BotFunction:
    """
    One function the model may call.

    ``signature`` is what calls are bound against; ``schema`` is the JSON schema of
    the arguments (an OpenAI ``parameters`` object). ``testable=False`` keeps
    :meth:`BotFunctions.test` from calling it (functions with side effects, e.g. robot
    actions). ``timeout`` (seconds), when set, is used by ``execute()`` instead of its
    default.
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

    def __post_init__(self):
        if self.signature is None:
            self.signature = inspect.signature(self.func)
        if not self.schema:
            self.schema = self._build_schema()

    def __call__(self, *args, **kwargs):
        """Call the wrapped function."""
        return self.func(*args, **kwargs)

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
        return bound

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

    def doc_line(self) -> str:
        """Return the python-style docs line ``NAME(args) - docs``."""
        line = self.signature_text()
        described = [f'{n}: {d}' for n, d in self.arg_docs.items() if d]
        docs = self.docs
        if described:
            docs = (docs + ' ' if docs else '') + f'({"; ".join(described)})'
        return f'{line} - {docs}' if docs else line

    def tool_schema(self) -> Dict[str, Any]:
        """Return the OpenAI tool schema ``{'type': 'function', 'function': {...}}``."""
        return {'type': 'function', 'function': {
            'name': self.name, 'description': self.docs, 'parameters': self.schema}}


def _resolve_prose(value: Union[bool, str], default: str) -> str:
    if value is True:
        return default
    if not value:
        return ''
    return str(value)


class BotFunctions:
    """
    Manager of the functions the model may call (a process-wide singleton).

    Used like a list: ``BotFunctions()`` returns the enabled functions, and the
    classmethods manage the registry (``register``, ``unregister``, ``filter``,
    ``find``, ``generate_docs``, ``run``, ``load``, ``test``).
    """

    _functions: Dict[str, BotFunction] = {}
    _lock = threading.RLock()
    _loaded = False
    _tested = False

    def __new__(cls, all=False, load=True, test=False):  # noqa: A002 - NanoLLM's name
        """
        Return the list of enabled functions (all of them with ``all=True``).

        ``load=True`` imports the built-in functions first (once); ``test=True`` also
        tests them (once).
        """
        if load and not cls._loaded:
            cls.load(test=test)
        elif test and not cls._tested:
            cls.test()
        return cls.list(all=all)

    @classmethod
    def len(cls) -> int:  # noqa: A003 - NanoLLM's name
        """Return the number of all registered bot functions."""
        with cls._lock:
            return len(cls._functions)

    @classmethod
    def list(cls, all=False) -> List[BotFunction]:  # noqa: A002,A003 - NanoLLM's names
        """Return the enabled functions (or every registered one with ``all=True``)."""
        with cls._lock:
            return [f for f in cls._functions.values() if all or f.enabled]

    @classmethod
    def names(cls, all=False) -> List[str]:  # noqa: A002 - NanoLLM's name
        """Return the names of the enabled (or all) functions."""
        return [f.name for f in cls.list(all=all)]

    @classmethod
    def filter(cls, filters: Union[str, Iterable[str]], mode: str = 'enable'):  # noqa: A003
        """
        Enable (``mode='enable'``) or disable the functions whose names match.

        ``filters`` is a name or fnmatch pattern (``'ros_*'``), or a list of them,
        matched case-insensitively; functions that do not match are left as they are.
        Returns the matched functions. Raises ``ValueError`` for an unknown mode or a
        filter that matches no registered function.
        """
        if mode not in ('enable', 'disable'):
            raise ValueError(f"filter mode must be 'enable' or 'disable', not {mode!r}")
        if isinstance(filters, str):
            filters = [filters]
        matched: List[BotFunction] = []
        with cls._lock:
            for pattern in filters or []:
                hits = [f for f in cls._functions.values()
                        if fnmatch.fnmatchcase(f.name.lower(), str(pattern).lower())]
                if not hits:
                    raise ValueError(f'no bot function matches {pattern!r}; registered: '
                                     f'{", ".join(cls._functions) or "none"}')
                for func in hits:
                    func.enabled = mode == 'enable'
                    if func not in matched:
                        matched.append(func)
        return matched

    @classmethod
    def find(cls, name: str, functions: Optional[Sequence[Any]] = None) -> Optional[BotFunction]:
        """
        Find a function by name (in ``functions`` if given, else all registered ones).

        Returns ``None`` when not found. ``functions`` may hold ``BotFunction`` records
        or callables registered with ``@bot_function``.
        """
        if functions is None:
            if not cls._loaded:
                cls.load(test=False)
            with cls._lock:
                return cls._functions.get(name)
        for func in functions:
            record = cls._as_record(func)
            if record is not None and record.name == name:
                return record
        return None

    @classmethod
    def _as_record(cls, func: Any) -> Optional[BotFunction]:
        if isinstance(func, BotFunction):
            return func
        record = getattr(func, '__bot_function__', None)
        if isinstance(record, BotFunction):
            return record
        if isinstance(func, str):
            return cls.find(func)
        return None

    @classmethod
    def records(cls, functions: Optional[Sequence[Any]] = None) -> List[BotFunction]:
        """Look up each of ``functions`` as a ``BotFunction`` (default: ``BotFunctions()``)."""
        if functions is None:
            return cls()
        out = []
        for func in functions:
            record = cls._as_record(func)
            if record is None:
                raise ValueError(f'{func!r} is not a bot function; register it with '
                                 f'@bot_function or BotFunctions.register()')
            out.append(record)
        return out

    @classmethod
    def tool_schemas(cls, functions: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Return the OpenAI tool schemas of the given (default: enabled) functions."""
        return [f.tool_schema() for f in cls.records(functions)]

    @classmethod
    def generate_docs(cls, prologue: Union[bool, str] = True, epilogue: Union[bool, str] = True,
                      spec: str = 'python', functions: Optional[Sequence[Any]] = None) -> str:
        """
        Collate the documentation of the enabled (or given) functions for the prompt.

        ``spec='python'``: one line ``NAME(args) - docs`` per function, with a prologue
        telling the model to call them in Python syntax. ``spec='json'``: the OpenAI
        tool schemas as JSON inside ``<tools>``, with the ``<tool_call>`` instructions
        (Hermes / Qwen / chat-ml-tools). ``spec='openai'``: the bare JSON list of tool
        schemas. ``prologue``/``epilogue`` may be ``False`` or a custom string. Returns
        ``''`` when there are no functions.
        """
        if spec not in SPECS:
            raise ValueError(f'unknown docs spec {spec!r}; use one of {", ".join(SPECS)}')
        records = cls.records(functions)
        if not records:
            return ''
        if spec == 'python':
            body = '\n'.join('* ' + f.doc_line() for f in records)
            example = records[0].example_call()
            head = _resolve_prose(prologue, PYTHON_PROLOGUE)
            tail = _resolve_prose(epilogue, PYTHON_EPILOGUE).replace('{example}', example)
            return head + body + tail
        schemas = [f.tool_schema() for f in records]
        if spec == 'openai':
            body = json.dumps(schemas)
            head = prologue if isinstance(prologue, str) else ''
            tail = epilogue if isinstance(epilogue, str) else ''
            return head + body + tail
        body = '\n'.join(json.dumps(s) for s in schemas)
        return _resolve_prose(prologue, JSON_PROLOGUE) + body + _resolve_prose(
            epilogue, JSON_EPILOGUE)

    @classmethod
    def register(cls, func: Callable[..., Any], name: Optional[str] = None,
                 docs: Optional[str] = None, enabled: bool = True, **kwargs) -> BotFunction:
        """
        Register ``func`` as a bot function and return its record.

        ``name`` defaults to the function's name and must be a Python identifier;
        ``docs`` defaults to the docstring's first paragraph. Extra keyword arguments
        set ``BotFunction`` fields (``arg_docs``, ``testable``, ``timeout``, ``source``,
        ``signature``). Registering a name again replaces the old function.
        """
        if not callable(func):
            raise ValueError(f'bot function must be callable, got {func!r}')
        name = name or getattr(func, '__name__', None)
        if not name or not _NAME_RE.match(name):
            raise ValueError(f'bot function name {name!r} must be a Python identifier '
                             f'(letters, digits, underscore)')
        arg_docs = dict(_arg_docs_from_docstring(getattr(func, '__doc__', None)))
        arg_docs.update(kwargs.pop('arg_docs', None) or {})
        if docs is None:
            docs = _first_paragraph(getattr(func, '__doc__', None))
        record = BotFunction(name=name, func=func, docs=' '.join(str(docs).split()),
                             enabled=enabled, arg_docs=arg_docs, **kwargs)
        with cls._lock:
            cls._functions[name] = record
        try:
            func.__bot_function__ = record
        except (AttributeError, TypeError):
            pass  # builtins and bound methods cannot take attributes; lookup is by name
        return record

    @classmethod
    def unregister(cls, name: str) -> bool:
        """Remove the function called ``name``; return False if there was none."""
        with cls._lock:
            return cls._functions.pop(name, None) is not None

    @classmethod
    def run(cls, text: str, template: Any = None,
            functions: Optional[Sequence[Any]] = None) -> List[tuple]:
        """
        Invoke every complete function call in ``text`` and return the results.

        Returns a list of ``(ToolCall, result_text)`` in the order the calls appear.
        Bad calls give an error text, never an exception. ``template`` (a template name
        or an object with ``.name``) is accepted for NanoLLM compatibility; both the
        python and the template call syntax are always recognised.
        """
        from .parsing import execute, find_calls
        records = cls.records(functions)
        return [(call, execute(call, records)) for call in find_calls(text, records)]

    @classmethod
    def load(cls, test: bool = True) -> List[BotFunction]:
        """Load the built-in functions by importing their module; test them if asked."""
        importlib.import_module(__name__.rsplit('.', 1)[0] + '.builtins')
        with cls._lock:
            cls._loaded = True
        if test:
            cls.test()
        return cls.list()

    @classmethod
    def test(cls, disable_on_error: bool = True, timeout: float = 5.0) -> bool:
        """
        Call each testable enabled function that needs no arguments.

        A function that raises or runs past ``timeout`` seconds is disabled (with
        ``disable_on_error``). Returns True if all tests passed, otherwise False.
        """
        from .parsing import run_with_timeout
        passed = True
        for func in cls.list():
            if not func.testable or func.required_args:
                continue
            ok, _ = run_with_timeout(func.func, (), {}, timeout)
            if not ok:
                passed = False
                if disable_on_error:
                    func.enabled = False
        with cls._lock:
            cls._tested = True
        return passed


def bot_function(func: Optional[Callable[..., Any]] = None, name: Optional[str] = None,
                 docs: Optional[str] = None, enabled: bool = True, **kwargs):
    """
    Decorate a function to expose it to the model (bare or with arguments).

    ``@bot_function`` or ``@bot_function(name='TIME', docs='...', enabled=False)``.
    The function is returned unchanged (its record is ``func.__bot_function__``).
    """
    def decorate(f):
        BotFunctions.register(f, name=name, docs=docs, enabled=enabled, **kwargs)
        return f

    if func is None:
        return decorate
    return decorate(func)


__all__ = ['BotFunction', 'BotFunctions', 'bot_function']

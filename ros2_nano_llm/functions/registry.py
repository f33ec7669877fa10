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
Bot function registries: :class:`FunctionRegistry` objects, and NanoLLM's front over one.

A registry is an object that holds the functions a model may call, by name::

    registry = FunctionRegistry()
    registry.register(set_lights, name='LIGHTS', docs='Switch the lights.')
    registry.load_builtins(['TIME'])
    reply = model.generate(prompt, functions=registry)   # iterating gives the enabled ones

NanoLLM's API is a front over one module-level default registry (the way
``logging.getLogger()`` fronts logger objects): ``@bot_function`` registers into it, and
``BotFunctions()`` returns its enabled functions::

    @bot_function
    def TIME():
        '''Returns the current time.'''

    system_prompt = 'You are a helpful robot.' + BotFunctions.generate_docs()
    reply = model.generate(prompt, functions=BotFunctions())

Only that front changes the default registry; everything else (the node, the call detector,
the generation hook) takes a registry or a list of functions. A registry is guarded by a
lock, because a node registers and calls functions from several threads. No torch and no
rclpy here.
"""

import dataclasses
import fnmatch
import json
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from .builtins import BUILTINS
from .guard import CallPolicy
from .parsing import execute, find_calls, format_result, run_with_timeout, ToolCall
from .record import as_records, FunctionRecord
from .runner import CallRunner
from .syntax import (HERMES, JSON_EPILOGUE, JSON_PROLOGUE, PYTHON,  # noqa: F401 (names
                     PYTHON_EPILOGUE, PYTHON_PROLOGUE, syntax_of)     # kept here too)

SPECS = ('python', 'json', 'openai')


class BotFunction(FunctionRecord):
    """
    One registered function, callable NanoLLM's way on model text.

    ``record('The time is TIME()')`` runs the last call to this function in the text and
    returns its result text (``None`` when the text does not call it). The function itself
    is ``record.func`` (also ``record.function``). ``builtin`` marks a library built-in,
    which never replaces a function registered otherwise.
    """

    builtin: bool = False

    def __call__(self, text: str) -> Optional[str]:
        """Run the last call to this function in ``text``; return its result or None."""
        calls = [c for c in find_calls(str(text), [self]) if c.name == self.name]
        if not calls:
            return None
        return execute(calls[-1], [self])


def _resolve_prose(value: Union[bool, str], default: str) -> str:
    if value is True:
        return default
    if not value:
        return ''
    return str(value)


class FunctionRegistry:
    """
    A set of bot functions, by name: what a model may call.

    ``FunctionRegistry()`` is empty; ``FunctionRegistry([f, g])`` registers callables (or
    records) at once. Iterating (and ``len``) gives the enabled functions, so a registry
    can be passed wherever a list of functions is taken (``generate(functions=...)``,
    ``CallDetector``, ``execute``). Thread-safe.

    ``policy`` (``guard.CallPolicy``) approves the calls that need it and takes the events
    of every call run through the registry: :meth:`execute`, :meth:`run_calls` and a
    reply's calls (``generate(functions=registry)``). The default approves nothing (a
    ``confirm=True`` function is refused) and drops the events. ``runner`` runs the calls
    (default: a ``CallRunner`` with a thread pool of its own, made on the first call; the node
    passes one on its own pool).
    """

    def __init__(self, functions: Iterable[Any] = (), policy: Optional[CallPolicy] = None,
                 runner: Optional[CallRunner] = None):
        """Create a registry holding ``functions`` (callables or records)."""
        self._functions: Dict[str, BotFunction] = {}
        self._lock = threading.RLock()
        self.builtins_loaded = False
        self.tested = False
        self.runner = runner if runner is not None else CallRunner()  # where its calls run
        self.policy = policy if policy is not None else CallPolicy()
        for func in functions:
            if isinstance(func, FunctionRecord):
                self.add(func)
            else:
                self.register(func)

    # ---- contents ------------------------------------------------------------------
    def register(self, func: Callable[..., Any], name: Optional[str] = None,
                 docs: Optional[str] = None, enabled: bool = True, builtin: bool = False,
                 **fields) -> BotFunction:
        """
        Register ``func`` as a bot function; return its record.

        ``name`` defaults to the function's name and must be a Python identifier;
        ``docs`` defaults to the docstring's first paragraph. ``fields`` set other
        ``BotFunction`` fields (``arg_docs``, ``testable``, ``timeout``, ``source``,
        ``signature``). Registering a name again replaces the old function, except that a
        ``builtin`` never replaces a function registered otherwise (a user's ``DATE`` wins
        over the built-in one, whatever the order). ``func.__bot_function__`` is set to
        the record when the callable takes attributes.
        """
        record = BotFunction.create(func, name=name, docs=docs, enabled=enabled, **fields)
        record.builtin = builtin
        return self.add(record)

    def add(self, record: FunctionRecord) -> BotFunction:
        """Add a ready-made record (see :meth:`register` for the rules); return it."""
        if not isinstance(record, BotFunction):
            record = BotFunction(**{f.name: getattr(record, f.name)
                                    for f in dataclasses.fields(FunctionRecord)})
        with self._lock:
            existing = self._functions.get(record.name)
            if record.builtin and existing is not None and not existing.builtin:
                return existing
            self._functions[record.name] = record
        try:
            record.func.__bot_function__ = record
        except (AttributeError, TypeError):
            pass  # builtins and bound methods cannot take attributes; lookup is by name
        return record

    def unregister(self, name: str) -> bool:
        """Remove the function called ``name``; return False if there was none."""
        with self._lock:
            return self._functions.pop(name, None) is not None

    def load_builtins(self, names: Optional[Iterable[str]] = None) -> List[BotFunction]:
        """
        Register the built-in functions (``DATE``, ``TIME``), or only those in ``names``.

        A function of the same name registered otherwise stays (it wins over the
        built-in). Returns the records now under those names. Raises ValueError for a
        name that is not a built-in.
        """
        names = list(BUILTINS) if names is None else list(dict.fromkeys(names))
        unknown = [n for n in names if n not in BUILTINS]
        if unknown:
            raise ValueError(f'there is no built-in function {unknown[0]!r}; available: '
                             f'{", ".join(BUILTINS)}')
        out = [self.register(BUILTINS[n], name=n, builtin=True) for n in names]
        if set(names) == set(BUILTINS):
            self.builtins_loaded = True
        return out

    def find(self, name: str) -> Optional[BotFunction]:
        """Return the function called ``name`` (enabled or not), or None."""
        with self._lock:
            return self._functions.get(name)

    def list(self, all: bool = False) -> List[BotFunction]:  # noqa: A002,A003 - NanoLLM's names
        """Return the enabled functions (or every registered one with ``all=True``)."""
        with self._lock:
            return [f for f in self._functions.values() if all or f.enabled]

    def names(self, all: bool = False) -> List[str]:  # noqa: A002 - NanoLLM's name
        """Return the names of the enabled (or all) functions."""
        return [f.name for f in self.list(all=all)]

    def __iter__(self) -> Iterator[BotFunction]:
        """Iterate over the enabled functions."""
        return iter(self.list())

    def __len__(self) -> int:
        """Return the number of enabled functions."""
        return len(self.list())

    def __contains__(self, name: object) -> bool:
        """Return True when a function called ``name`` is registered."""
        with self._lock:
            return name in self._functions

    def __getitem__(self, index: int) -> BotFunction:
        """Return the ``index``-th registered function."""
        return self.list(all=True)[index]

    def __repr__(self) -> str:
        """Return ``FunctionRegistry([names])``."""
        return f'FunctionRegistry({self.names(all=True)})'

    def filter(self, filters: Union[str, Iterable[str]],  # noqa: A003 - NanoLLM's name
               mode: str = 'enable') -> List[BotFunction]:
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
        with self._lock:
            for pattern in filters or []:
                hits = [f for f in self._functions.values()
                        if fnmatch.fnmatchcase(f.name.lower(), str(pattern).lower())]
                if not hits:
                    raise ValueError(f'no bot function matches {pattern!r}; registered: '
                                     f'{", ".join(self._functions) or "none"}')
                for func in hits:
                    func.enabled = mode == 'enable'
                    if func not in matched:
                        matched.append(func)
        return matched

    def records(self, functions: Optional[Iterable[Any]] = None) -> List[FunctionRecord]:
        """
        Look up ``functions`` as records; by default the enabled functions of this registry.

        Items may be records, callables registered as bot functions, or names of
        functions in this registry. Raises ValueError for anything else.
        """
        if functions is None:
            return list(self.list())
        out: List[FunctionRecord] = []
        for func in functions:
            record = self.find(func) if isinstance(func, str) else None
            out.extend([record] if record is not None else as_records([func]))
        return out

    # ---- prompts -----------------------------------------------------------------------
    def tool_schemas(self, functions: Optional[Iterable[Any]] = None) -> List[Dict[str, Any]]:
        """Return the OpenAI tool schemas of the given (default: enabled) functions."""
        return [f.tool_schema() for f in self.records(functions)]

    def generate_docs(self, prologue: Union[bool, str] = True,
                      epilogue: Union[bool, str] = True, spec: str = 'python',
                      functions: Optional[Iterable[Any]] = None, *,
                      template: Any = None) -> str:
        """
        Collate the documentation of the enabled (or given) functions for the prompt.

        With ``template`` (a ``ChatTemplate``, template dict or ``ToolSyntax``), its tool
        syntax gives the spec and the default prologue and epilogue.

        ``spec='python'``: one line ``NAME(args) - docs`` per function, with a prologue
        telling the model to call them in Python syntax. ``spec='json'``: the OpenAI
        tool schemas as JSON inside ``<tools>``, with the ``<tool_call>`` instructions
        (Hermes / Qwen / chat-ml-tools). ``spec='openai'``: the bare JSON list of tool
        schemas. ``prologue``/``epilogue`` may be ``False`` or a custom string. Returns
        ``''`` when there are no functions.
        """
        if template is not None:
            spec = syntax_of(template).docs_spec
        if spec not in SPECS:
            raise ValueError(f'unknown docs spec {spec!r}; use one of {", ".join(SPECS)}')
        records = self.records(functions)
        if not records:
            return ''
        # the prologue and epilogue: the template's syntax's, else the spec's own
        words = syntax_of(template) if template is not None else (
            PYTHON if spec == 'python' else HERMES)
        if spec == 'python':
            body = '\n'.join('* ' + f.doc_line() for f in records)
            example = records[0].example_call()
            head = _resolve_prose(prologue, words.prologue)
            tail = _resolve_prose(epilogue, words.epilogue)
            return head + body + tail.replace('{example}', example)
        schemas = [f.tool_schema() for f in records]
        if spec == 'openai':
            body = json.dumps(schemas)
            head = prologue if isinstance(prologue, str) else ''
            tail = epilogue if isinstance(epilogue, str) else ''
            return head + body + tail
        body = '\n'.join(json.dumps(s) for s in schemas)
        return _resolve_prose(prologue, words.prologue) + body + _resolve_prose(
            epilogue, words.epilogue)

    # ---- running -----------------------------------------------------------------------
    def run_calls(self, text: str, functions: Optional[Iterable[Any]] = None
                  ) -> List[Tuple[ToolCall, str]]:
        """
        Run every complete function call in ``text``; return ``(ToolCall, result)`` pairs.

        In the order the calls appear; both python and template call syntax are found.
        Bad calls give an ``'error: ...'`` result, never an exception.
        """
        records = self.records(functions)
        return [(call, execute(call, records, runner=self.runner, policy=self.policy))
                for call in find_calls(text or '', records)]

    def execute(self, call: ToolCall, stopped: Optional[Callable[[], bool]] = None) -> str:
        """
        Run one parsed call of an enabled function (see ``parsing.execute``); never raises.

        ``stopped()`` True keeps the call from starting (checked right before it starts).
        """
        return execute(call, self.list(), runner=self.runner, policy=self.policy,
                       stopped=stopped)

    def run(self, text: str, template: Any = None,
            functions: Optional[Iterable[Any]] = None) -> Optional[str]:
        """
        Run the function calls in ``text``; return their results as text, or None (NanoLLM).

        Without ``template``: ``' '`` followed by the results (python style, inline).
        With a ``template`` (name, dict or ``ChatTemplate``), a template-style call's
        result is formatted as that template's tool response (chat-ml-tools: Hermes'
        ``{"name": ..., "content": ...}``). :meth:`run_calls` gives the calls too.
        """
        results = self.run_calls(text, functions)
        if not results:
            return None
        if template is None:
            return ' ' + ' '.join(result for _, result in results)
        return '\n'.join(format_result(call, result, template) if call.style != 'python'
                         else result for call, result in results)

    def test(self, disable_on_error: bool = True, timeout: float = 5.0) -> bool:
        """
        Call each testable enabled function that needs no arguments.

        A function that needs approval (``confirm``) is never called here. One that raises
        or runs past ``timeout`` seconds is disabled (with ``disable_on_error``). Returns
        True if all tests passed, otherwise False.
        """
        passed = True
        for func in self.list():
            if not func.testable or func.required_args or func.confirm:
                continue
            ok, _ = run_with_timeout(func.func, (), {}, timeout, self.runner, func.name)
            if not ok:
                passed = False
                if disable_on_error:
                    func.enabled = False
        self.tested = True
        return passed


_DEFAULT = FunctionRegistry()  # changed only through the NanoLLM front below


def default_registry() -> FunctionRegistry:
    """Return the default registry that ``@bot_function`` and ``BotFunctions`` use."""
    return _DEFAULT


class _FrontMeta(type):
    """Lets ``BotFunctions[n]`` index the default registry, as in NanoLLM."""

    def __getitem__(cls, index: int) -> BotFunction:
        return _DEFAULT[index]


class BotFunctions(metaclass=_FrontMeta):
    """
    NanoLLM's manager of bot functions: a front over the default :class:`FunctionRegistry`.

    Used like a list: ``BotFunctions()`` returns the enabled functions, and
    ``BotFunctions[n]`` the n-th registered one; the classmethods manage the default
    registry (``register``, ``unregister``, ``filter``, ``find``, ``generate_docs``,
    ``run``, ``load``, ``test``). Code that wants its own set of functions makes a
    :class:`FunctionRegistry` instead.
    """

    def __new__(cls, all=False, load=True, test=False):  # noqa: A002 - NanoLLM's name
        """
        Return the list of enabled functions (all of them with ``all=True``).

        ``load=True`` registers the built-in functions first (once); ``test=True`` also
        tests them (once).
        """
        if load and not _DEFAULT.builtins_loaded:
            cls.load(test=test)
        elif test and not _DEFAULT.tested:
            cls.test()
        return cls.list(all=all)

    @staticmethod
    def registry() -> FunctionRegistry:
        """Return the default registry behind this front."""
        return _DEFAULT

    @classmethod
    def len(cls) -> int:  # noqa: A003 - NanoLLM's name
        """Return the number of all registered bot functions."""
        return len(_DEFAULT.list(all=True))

    @classmethod
    def list(cls, all=False) -> List[BotFunction]:  # noqa: A002,A003 - NanoLLM's names
        """Return the enabled functions (or every registered one with ``all=True``)."""
        return _DEFAULT.list(all=all)

    @classmethod
    def names(cls, all=False) -> List[str]:  # noqa: A002 - NanoLLM's name
        """Return the names of the enabled (or all) functions."""
        return _DEFAULT.names(all=all)

    @classmethod
    def filter(cls, filters: Union[str, Iterable[str]], mode: str = 'enable'):  # noqa: A003
        """Enable or disable the functions whose names match (see ``FunctionRegistry``)."""
        return _DEFAULT.filter(filters, mode)

    @classmethod
    def find(cls, name: str, functions: Optional[Iterable[Any]] = None) -> Optional[BotFunction]:
        """
        Find a function by name (in ``functions`` if given, else all registered ones).

        Returns ``None`` when not found; the built-ins are registered first if they were
        not yet. ``functions`` may hold records or callables registered as bot functions.
        """
        if functions is None:
            if not _DEFAULT.builtins_loaded:
                cls.load(test=False)
            return _DEFAULT.find(name)
        for record in _DEFAULT.records(functions):
            if record.name == name:
                return record
        return None

    @classmethod
    def records(cls, functions: Optional[Iterable[Any]] = None) -> List[FunctionRecord]:
        """Look up each of ``functions`` as a record (default: ``BotFunctions()``)."""
        return cls() if functions is None else _DEFAULT.records(functions)

    @classmethod
    def tool_schemas(cls, functions: Optional[Iterable[Any]] = None) -> List[Dict[str, Any]]:
        """Return the OpenAI tool schemas of the given (default: enabled) functions."""
        return _DEFAULT.tool_schemas(cls.records(functions))

    @classmethod
    def generate_docs(cls, prologue: Union[bool, str] = True, epilogue: Union[bool, str] = True,
                      spec: str = 'python', functions: Optional[Iterable[Any]] = None) -> str:
        """Collate the docs of the enabled (or given) functions (see ``FunctionRegistry``)."""
        return _DEFAULT.generate_docs(prologue, epilogue, spec, cls.records(functions))

    @classmethod
    def register(cls, func: Callable[..., Any], name: Optional[str] = None,
                 docs: Optional[str] = None, enabled: bool = True, **kwargs) -> Callable:
        """
        Register ``func`` in the default registry and return ``func`` (as NanoLLM does).

        Its record is ``func.__bot_function__`` or ``BotFunctions.find(name)``; see
        :meth:`FunctionRegistry.register` for the arguments.
        """
        _DEFAULT.register(func, name=name, docs=docs, enabled=enabled, **kwargs)
        return func

    @classmethod
    def unregister(cls, name: str) -> bool:
        """Remove the function called ``name``; return False if there was none."""
        return _DEFAULT.unregister(name)

    @classmethod
    def run(cls, text: str, template: Any = None,
            functions: Optional[Iterable[Any]] = None) -> Optional[str]:
        """Run the calls in ``text``; return the results' text or None (NanoLLM's)."""
        return _DEFAULT.run(text, template, cls.records(functions))

    @classmethod
    def run_calls(cls, text: str,
                  functions: Optional[Iterable[Any]] = None) -> List[Tuple[ToolCall, str]]:
        """Run the calls in ``text``; return ``(ToolCall, result)`` pairs."""
        return _DEFAULT.run_calls(text, cls.records(functions))

    @classmethod
    def load(cls, test: bool = True) -> List[BotFunction]:
        """Register the built-in functions (a user's function of the same name wins)."""
        _DEFAULT.load_builtins()
        if test:
            cls.test()
        return cls.list()

    @classmethod
    def test(cls, disable_on_error: bool = True, timeout: float = 5.0) -> bool:
        """Test the enabled functions that need no arguments (see ``FunctionRegistry``)."""
        return _DEFAULT.test(disable_on_error, timeout)


def bot_function(func: Optional[Callable[..., Any]] = None, name: Optional[str] = None,
                 docs: Optional[str] = None, enabled: bool = True, **kwargs):
    """
    Decorate a function to expose it to the model (bare or with arguments).

    ``@bot_function`` or ``@bot_function(name='TIME', docs='...', enabled=False)``.
    The function is returned unchanged (its record is ``func.__bot_function__``); it
    goes into the default registry.
    """
    def decorate(f):
        return BotFunctions.register(f, name=name, docs=docs, enabled=enabled, **kwargs)

    if func is None:
        return decorate
    return decorate(func)


__all__ = ['BotFunction', 'BotFunctions', 'FunctionRegistry', 'bot_function',
           'default_registry']

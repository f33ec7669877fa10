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
Robot actions: bot functions that call ROS 2 services (drives rclpy: it lives in ``ros/``).

The actions come from a YAML list (``config/functions.yaml``)::

    - name: set_headlights             # the function name the model calls
      description: Turn the headlights on or off.
      args:                            # optional; each becomes a request field
        - {name: 'on', type: bool, description: true for on, field: data}
      service: /robot/set_headlights   # only listed services are ever called
      type: std_srvs/srv/SetBool       # any service type with primitive request fields
      timeout: 5.0                     # seconds for the whole call (default 5)

``type`` is resolved at run time (``std_srvs/srv/SetBool`` -> ``std_srvs.srv.SetBool``);
each argument fills the request field of its name (or ``field``), which must be a
``bool``/``int``/``float``/``str``-compatible primitive. The node creates the bridge
and keeps it for its configured life::

    bridge = RosServiceFunctions(node, load_actions(path), ReentrantCallbackGroup())
    model.generate(..., functions=bridge.functions)   # set_headlights(on=True) runs
    bridge.interrupt()        # ~/stop: every waiting call returns 'error: ...: interrupted'
    bridge.destroy()          # destroys the clients

The bridge keeps its own ``BotFunction`` records; no process-wide registry is written
unless one is passed (``registry=``). A call is made from a plain thread (the model's
generation thread, or a helper thread of ``~/call_function``), never from an executor
callback: it sends the request with ``call_async`` and waits on the future's
done-callback (an event), bounded by the action's timeout, while the node's executor
spins in its own threads and delivers the response. The result goes back to the model as
text such as ``success: true, message: "moved 1.0 m"``; an unavailable service, a
timeout or a bad argument give an ``error: ...`` text, never an exception.
"""

from dataclasses import dataclass, field
import importlib
import inspect
import json
import os
import re
import threading
import time
from typing import Any, Dict, List, Sequence, Tuple, Union

import yaml

from ..functions.registry import BotFunction

ARG_TYPES = {'bool': bool, 'int': int, 'float': float, 'str': str}
DEFAULT_TIMEOUT = 5.0
_ACTION_KEYS = {'name', 'description', 'args', 'service', 'type', 'timeout'}
_ARG_KEYS = {'name', 'type', 'description', 'field'}
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_TYPE_RE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)/(?:srv/)?([A-Za-z_][A-Za-z0-9_]*)$')
_INT_RANGES = {f'{s}int{b}': ((0, 2 ** b - 1) if s else (-2 ** (b - 1), 2 ** (b - 1) - 1))
               for s in ('', 'u') for b in (8, 16, 32, 64)}
_INT_RANGES['char'] = (0, 255)
_FLOAT_FIELDS = ('float', 'double')


@dataclass(frozen=True)
class ActionArg:
    """One argument of a robot action: its name, Python type name and request field."""

    name: str
    type: str  # noqa: A003 - the YAML key
    description: str = ''
    field: str = ''

    @property
    def request_field(self) -> str:
        """Return the request field this argument fills (``field`` or the name)."""
        return self.field or self.name


@dataclass(frozen=True)
class RobotAction:
    """One robot action: a bot function that calls one ROS service."""

    name: str
    description: str
    service: str
    type: str  # noqa: A003 - the YAML key
    args: Tuple[ActionArg, ...] = field(default_factory=tuple)
    timeout: float = DEFAULT_TIMEOUT


def _fail(where: str, what: str) -> None:
    raise ValueError(f'{where}: {what}')


def _parse_arg(raw: Any, where: str) -> ActionArg:
    if not isinstance(raw, dict):
        _fail(where, f'each arg must be a mapping with name and type, got {raw!r}')
    unknown = set(raw) - _ARG_KEYS
    if unknown:
        _fail(where, f'unknown key(s) {sorted(unknown)}; allowed: {sorted(_ARG_KEYS)}')
    name = raw.get('name')
    if not isinstance(name, str) or not _NAME_RE.match(name):
        _fail(where, f'arg name must be a Python identifier, got {name!r} '
                     "(quote YAML words such as 'on': unquoted they read as true)")
    type_name = raw.get('type')
    if type_name not in ARG_TYPES:
        _fail(where, f"arg '{name}' has type {type_name!r}; use one of {', '.join(ARG_TYPES)}")
    request_field = raw.get('field', '')
    if request_field and (not isinstance(request_field, str)
                          or not _NAME_RE.match(request_field)):
        _fail(where, f"arg '{name}': field must be a request field name, got {request_field!r}")
    description = raw.get('description', '')
    return ActionArg(name, type_name, '' if description is None else str(description),
                     request_field or '')


def _parse_action(raw: Any, where: str) -> RobotAction:
    if not isinstance(raw, dict):
        _fail(where, f'each action must be a mapping (name, description, args, service, type, '
                     f'timeout), got {raw!r}')
    unknown = set(raw) - _ACTION_KEYS
    if unknown:
        _fail(where, f'unknown key(s) {sorted(unknown)}; allowed: {sorted(_ACTION_KEYS)}')
    name = raw.get('name')
    if not isinstance(name, str) or not _NAME_RE.match(name):
        _fail(where, f'name must be a Python identifier (the model calls it), got {name!r}')
    where = f"{where} ('{name}')"
    for key in ('service', 'type'):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            _fail(where, f'{key} is required (a string)')
    if not _TYPE_RE.match(raw['type'].strip()):
        _fail(where, f"type must look like 'std_srvs/srv/SetBool', got {raw['type']!r}")
    timeout = raw.get('timeout', DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        _fail(where, f'timeout must be a positive number of seconds, got {timeout!r}')
    raw_args = raw.get('args') or []
    if not isinstance(raw_args, list):
        _fail(where, 'args must be a list')
    args = tuple(_parse_arg(a, f'{where} arg {i}') for i, a in enumerate(raw_args))
    for key, what in ((lambda a: a.name, 'arg name'), (lambda a: a.request_field, 'field')):
        seen = [key(a) for a in args]
        dupes = sorted({n for n in seen if seen.count(n) > 1})
        if dupes:
            _fail(where, f'duplicate {what}(s): {", ".join(dupes)}')
    description = raw.get('description') or ''
    return RobotAction(name=name, description=' '.join(str(description).split()),
                       service=raw['service'].strip(), type=raw['type'].strip(), args=args,
                       timeout=float(timeout))


def parse_actions(data: Any, origin: str = 'robot actions') -> List[RobotAction]:
    """
    Validate parsed YAML (a list of actions, or ``{actions: [...]}``) into actions.

    ``None`` or an empty list means no actions. Raises ``ValueError`` naming the entry
    and the problem.
    """
    if isinstance(data, dict) and set(data) == {'actions'}:
        data = data['actions']
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f'{origin}: expected a list of actions, got {type(data).__name__}')
    actions = [_parse_action(raw, f'{origin}: action {i}') for i, raw in enumerate(data)]
    names = [a.name for a in actions]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f'{origin}: duplicate action name(s): {", ".join(dupes)}')
    return actions


def load_actions(path: Union[str, os.PathLike]) -> List[RobotAction]:
    """Load and validate a robot actions YAML file (see the module docstring)."""
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ValueError(f'cannot read robot actions file {path!r}: {exc.strerror}') from None
    except yaml.YAMLError as exc:
        raise ValueError(f'robot actions file {path!r} is not valid YAML: {exc}') from None
    return parse_actions(data, origin=path)


def resolve_service_type(type_name: str) -> Any:
    """Import a service type by name: ``std_srvs/srv/SetBool`` -> ``std_srvs.srv.SetBool``."""
    match = _TYPE_RE.match(type_name.strip())
    if not match:
        raise ValueError(f"service type must look like 'std_srvs/srv/SetBool', "
                         f'got {type_name!r}')
    package, name = match.groups()
    try:
        module = importlib.import_module(f'{package}.srv')
    except ImportError:
        raise ValueError(f"unknown service type '{type_name}': package '{package}' has no "
                         f'Python interfaces installed (install it or source its '
                         f'workspace)') from None
    srv_type = getattr(module, name, None)
    if srv_type is None or not hasattr(srv_type, 'Request'):
        raise ValueError(f"unknown service type '{type_name}': '{package}.srv' has no "
                         f"service '{name}'") from None
    return srv_type


def _field_accepts(field_type: str, arg_type: str) -> bool:
    if arg_type == 'bool':
        return field_type == 'boolean'
    if arg_type == 'int':
        return field_type in _INT_RANGES or field_type in _FLOAT_FIELDS
    if arg_type == 'float':
        return field_type in _FLOAT_FIELDS
    return field_type in ('string', 'wstring') or re.match(r'^w?string<=\d+$', field_type)


def check_action_type(action: RobotAction) -> Any:
    """
    Resolve the action's service type and check each argument's request field.

    Returns the service type. Raises ``ValueError`` for an unknown type, a missing or
    non-primitive field, or a field whose type does not fit the argument's type.
    """
    where = f"robot action '{action.name}'"
    try:
        srv_type = resolve_service_type(action.type)
    except ValueError as exc:
        raise ValueError(f'{where}: {exc}') from None
    fields = srv_type.Request.get_fields_and_field_types()
    for arg in action.args:
        field_name = arg.request_field
        if field_name not in fields:
            raise ValueError(
                f"{where}: arg '{arg.name}' needs request field '{field_name}', but "
                f"{action.type} request fields are: {', '.join(fields) or 'none'} "
                f'(set field: to one of them)')
        if not _field_accepts(fields[field_name], arg.type):
            raise ValueError(
                f"{where}: arg '{arg.name}' ({arg.type}) cannot fill request field "
                f"'{field_name}' of type '{fields[field_name]}' (only primitive fields: "
                f'boolean, integers, float/double, string)')
    return srv_type


def build_request(msg_type: Any, action: RobotAction, values: Dict[str, Any]) -> Any:
    """
    Build a request (or any message of ``msg_type``) from the model's argument values.

    Raises ``ValueError`` with a short message for a value of the wrong type or out of
    the field's range; fields without an argument keep their defaults.
    """
    request = msg_type() if not hasattr(msg_type, 'Request') else msg_type.Request()
    fields = request.get_fields_and_field_types()
    for arg in action.args:
        if arg.name not in values:
            continue
        value, field_type = values[arg.name], fields[arg.request_field]
        expected = ARG_TYPES[arg.type]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            raise ValueError(f"'{arg.name}' must be {arg.type}, got {value!r}")
        if field_type in _INT_RANGES:
            low, high = _INT_RANGES[field_type]
            if not low <= value <= high:
                raise ValueError(f"'{arg.name}' must be in [{low}, {high}], got {value}")
        elif field_type in _FLOAT_FIELDS:
            value = float(value)
        try:
            setattr(request, arg.request_field, value)
        except (AssertionError, TypeError, ValueError) as exc:
            raise ValueError(f"bad value for '{arg.name}': {exc}") from None
    return request


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, 'get_fields_and_field_types'):
        return '{' + response_to_text(value) + '}'
    if hasattr(value, 'tolist'):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_value_text(v) for v in value) + ']'
    return str(value)


def response_to_text(response: Any) -> str:
    """Return the fields of a response as text: ``success: true, message: "ok"``."""
    fields = response.get_fields_and_field_types()
    if not fields:
        return 'done'
    return ', '.join(f'{name}: {_value_text(getattr(response, name))}' for name in fields)


class RosServiceFunctions:
    """
    Expose robot actions (ROS services) to the model as bot functions.

    ``node`` is the rclpy node that owns the clients (it must be spun by an executor in
    another thread); ``callback_group`` is used for the clients (a
    ``ReentrantCallbackGroup`` is a good choice). Each action's type is checked at
    construction (``ValueError`` on a problem). The bridge keeps its own ``BotFunction``
    records (:attr:`functions`): pass them to ``generate(functions=...)`` or
    ``execute()``. No registry is touched unless one is given (``registry=``, e.g. the
    library's default ``BotFunctions``), see :meth:`register`.
    """

    def __init__(self, node: Any, actions: Sequence[Union[RobotAction, Dict[str, Any]]],
                 callback_group: Any = None, registry: Any = None, enabled: bool = True):
        actions = [a if isinstance(a, RobotAction) else parse_actions([a])[0] for a in actions]
        names = [a.name for a in actions]
        if len(set(names)) != len(names):
            raise ValueError(f'duplicate robot action names in {names}')
        self.node = node
        self.actions: Dict[str, RobotAction] = {a.name: a for a in actions}
        self._types = {a.name: check_action_type(a) for a in actions}
        self._clients: Dict[str, Any] = {}
        self._registry: Any = None
        self._lock = threading.Lock()
        self._waiting: Dict[int, List[Any]] = {}  # id -> [done event, interrupt reason]
        self._functions: Dict[str, BotFunction] = {
            a.name: self._make_record(a, enabled) for a in actions}
        try:
            for action in actions:
                self._clients[action.name] = node.create_client(
                    self._types[action.name], action.service, callback_group=callback_group)
        except Exception as exc:  # noqa: B902 - e.g. an invalid service name
            self.destroy()
            raise ValueError(f"robot action '{action.name}': cannot create a client for "
                             f"service '{action.service}': {exc}") from None
        if registry is not None:
            self.register(registry)

    @classmethod
    def from_yaml(cls, node: Any, path: Union[str, os.PathLike], callback_group: Any = None,
                  **kwargs) -> 'RosServiceFunctions':
        """Create the bridge for the actions listed in a YAML file."""
        return cls(node, load_actions(path), callback_group, **kwargs)

    @property
    def names(self) -> List[str]:
        """Return the action names."""
        return list(self.actions)

    @property
    def functions(self) -> List[BotFunction]:
        """Return the bot functions of this bridge (one record per action)."""
        return list(self._functions.values())

    def call(self, name: str, **values) -> str:
        """
        Call the service of action ``name`` with argument ``values``; return text.

        Blocks the calling thread (never an executor callback) up to the action's
        timeout, or until :meth:`interrupt`. Never raises: problems come back as
        ``'error: ...'`` text.
        """
        action = self.actions.get(name)
        if action is None:
            return f'error: unknown robot action {name!r}; available: {", ".join(self.actions)}'
        try:
            request = build_request(self._types[name], action, values)
        except ValueError as exc:
            return f'error: {name}: {exc}'
        client = self._clients.get(name)
        if client is None:
            return f'error: {name}: the robot action bridge was shut down'
        deadline = time.monotonic() + action.timeout
        waiter = [threading.Event(), '']
        with self._lock:
            self._waiting[id(waiter)] = waiter
        try:
            if not client.service_is_ready() and not self._wait_for_service(
                    client, waiter, deadline):
                if waiter[1]:
                    return f'error: {name}: {waiter[1]}'
                return (f"error: {name}: service '{action.service}' is not available "
                        f'(waited {action.timeout:g} s)')
            return self._wait(client, client.call_async(request), action, deadline, waiter)
        except Exception as exc:  # noqa: B902 - e.g. the context shut down mid-call
            return f'error: {name}: {type(exc).__name__}: {exc}'
        finally:
            with self._lock:
                self._waiting.pop(id(waiter), None)

    def interrupt(self, reason: str = 'interrupted: the call was stopped before the service '
                                      'answered') -> int:
        """
        End every call that waits for a service now; each returns ``'error: NAME: reason'``.

        The requests already sent are not taken back (a ROS service cannot be cancelled);
        their late responses are dropped. Returns how many calls were interrupted.
        """
        with self._lock:
            waiters = list(self._waiting.values())
        for waiter in waiters:
            waiter[1] = reason
            waiter[0].set()
        return len(waiters)

    @staticmethod
    def _wait_for_service(client: Any, waiter: List[Any], deadline: float) -> bool:
        # short slices so that interrupt() ends the wait at once
        while not waiter[1]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if client.wait_for_service(timeout_sec=min(remaining, 0.1)):
                return True
        return False

    def _wait(self, client: Any, future: Any, action: RobotAction, deadline: float,
              waiter: List[Any]) -> str:
        done = waiter[0]
        future.add_done_callback(lambda _: done.set())
        while not future.done():
            remaining = deadline - time.monotonic()
            if waiter[1] or remaining <= 0:
                client.remove_pending_request(future)
                future.cancel()
                if waiter[1]:
                    return f'error: {action.name}: {waiter[1]}'
                return (f"error: {action.name}: service '{action.service}' did not answer "
                        f'within {action.timeout:g} s')
            done.wait(min(remaining, 0.05))  # the short poll also covers a missed callback
        if future.cancelled():
            return f'error: {action.name}: the call was cancelled'
        exc = future.exception()
        if exc is not None:
            return f'error: {action.name}: {type(exc).__name__}: {exc}'
        return response_to_text(future.result())

    def _make_record(self, action: RobotAction, enabled: bool) -> BotFunction:
        params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=ARG_TYPES[a.type]) for a in action.args]
        signature = inspect.Signature(params, return_annotation=str)

        def robot_action(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            return self.call(action.name, **bound.arguments)

        robot_action.__name__ = action.name
        robot_action.__doc__ = action.description
        robot_action.__signature__ = signature
        # never run by a registry's test() (testable=False): it moves the robot
        record = BotFunction(name=action.name, func=robot_action, docs=action.description,
                             enabled=enabled, signature=signature,
                             arg_docs={a.name: a.description for a in action.args},
                             testable=False, timeout=action.timeout + 1.0, source='ros')
        # the request field's integer range bounds the argument (constrained calls)
        fields = self._types[action.name].Request.get_fields_and_field_types()
        for arg in action.args:
            bounds = _INT_RANGES.get(fields[arg.request_field]) if arg.type == 'int' else None
            if bounds:
                record.schema['properties'][arg.name].update(minimum=bounds[0], maximum=bounds[1])
        return record

    def register(self, registry: Any) -> List[BotFunction]:
        """
        Also register every action in ``registry`` (replacing older robot actions there).

        For library users who call functions through a ``FunctionRegistry`` (NanoLLM's
        ``BotFunctions`` front: ``BotFunctions.registry()``);
        the node does not. Raises ``ValueError`` when a name is taken by a function that
        is not a robot action (rename the action).
        """
        for action in self.actions.values():
            existing = registry.find(action.name)
            if existing is not None and existing.source != 'ros':
                raise ValueError(f"robot action '{action.name}' has the same name as the bot "
                                 f'function {existing.name}; rename the action')
        for name, record in self._functions.items():
            self._functions[name] = registry.register(
                record.func, name=name, docs=record.docs, enabled=record.enabled,
                signature=record.signature, arg_docs=dict(record.arg_docs), testable=False,
                timeout=record.timeout, source='ros',
                schema=dict(record.schema))
        self._registry = registry
        return self.functions

    def unregister(self) -> None:
        """Remove this bridge's functions from the registry it joined (others' stay)."""
        registry, self._registry = self._registry, None
        if registry is None:
            return
        for name, record in self._functions.items():
            if registry.find(name) is record:
                registry.unregister(name)

    def destroy(self) -> None:
        """Interrupt waiting calls, leave the registry and destroy the service clients."""
        self.interrupt('the robot action bridge was shut down')
        self.unregister()
        for client in self._clients.values():
            try:
                self.node.destroy_client(client)
            except Exception:  # noqa: B902 - the node may already be gone
                pass
        self._clients.clear()

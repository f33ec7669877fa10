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
:class:`RobotFunctions`: the entries of a ``functions_file`` as bot functions the model calls.

At construction every entry's type and field paths are resolved (``fields.Layout``) and its
client, publisher, action client or subscription is created, so a bad entry fails there
with a ``ValueError`` naming it. A call runs on a plain thread (the model's call runner, or
a helper thread of ``~/call_function``), never in an executor callback, and never raises:
problems come back as ``error: ...`` text. :meth:`interrupt` ends every call in progress
(a topic publication sends its ``after:`` message, an action goal is cancelled).
"""

import inspect
import os
import time
from typing import Any, Dict, List, Sequence, Tuple, Union

from .action import ActionCaller, CANCEL_WAIT_S
from .caller import Caller
from .entries import ARG_TYPES, Entry, load_entries, parse_entries
from .fields import field_type, import_type, INT_RANGES, Layout
from .reader import TopicReader
from .service import ServiceCaller
from .topic import TopicCaller
from .waiting import Waiters
from ...functions.registry import BotFunction

FINISH_S = 2.0  # destroy(): how long a call in progress may take to end before the handles go
DETACH_S = 0.1  # destroy(): between taking action clients off the executor and destroying them
_INTERFACE = {'service': 'srv', 'topic': 'msg', 'action': 'action', 'read': 'msg'}
_PART = {'service': ('Request', 'request'), 'action': ('Goal', 'goal'),
         'topic': (None, 'message'), 'read': (None, 'message')}


def resolve(entry: Entry) -> Tuple[Any, Layout]:
    """
    Resolve ``entry``'s type and field paths: return the ROS type and its layout.

    Raises ValueError naming the entry and the field (a missing package, an unknown field,
    a non-primitive target, a constant that does not fit).
    """
    where = f"robot action '{entry.name}'"
    try:
        ros_type = import_type(entry.type, _INTERFACE[entry.kind])
    except ValueError as exc:
        raise ValueError(f'{where}: {exc}') from None
    attr, part = _PART[entry.kind]
    msg_class = getattr(ros_type, attr) if attr else ros_type
    args = [(a.name, a.request_field, ARG_TYPES[a.type]) for a in entry.field_args()]
    layout = Layout(msg_class, entry.type, part, where, args, entry.set)
    # a reader's or an action result's fields: any path that exists
    shown, part = (ros_type.Result, 'result') if entry.kind == 'action' else (msg_class, part)
    for path in entry.fields:
        try:
            field_type(shown, path, part, entry.type)
        except ValueError as exc:
            raise ValueError(f'{where}: fields: {exc}') from None
    return ros_type, layout


class RobotFunctions:
    """
    Expose robot entries (services, topics, actions, readers) to the model as bot functions.

    ``node`` owns the handles (it must be spun by an executor in other threads);
    ``callback_group`` is used for them (a ``ReentrantCallbackGroup``). The bridge keeps
    its own ``BotFunction`` records (:attr:`functions`); no registry is touched unless one
    is given (``registry=``), see :meth:`register`.
    """

    def __init__(self, node: Any, actions: Sequence[Union[Entry, Dict[str, Any]]],
                 callback_group: Any = None, registry: Any = None, enabled: bool = True):
        entries = [a if isinstance(a, Entry) else parse_entries([a])[0] for a in actions]
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f'duplicate robot action names in {names}')
        self.node = node
        self.actions: Dict[str, Entry] = {e.name: e for e in entries}
        resolved = {e.name: resolve(e) for e in entries}
        self._types = {name: ros_type for name, (ros_type, _) in resolved.items()}
        self._layouts = {name: layout for name, (_, layout) in resolved.items()}
        self._after = {e.name: Layout(self._layouts[e.name].msg_class, e.type, 'message',
                                      f"robot action '{e.name}'", (), e.after, 'after')
                       for e in entries if e.after is not None}
        self._callers: Dict[str, Caller] = {}
        self._waiters = Waiters()
        self._registry: Any = None
        self._functions: Dict[str, BotFunction] = {
            e.name: self._make_record(e, enabled) for e in entries}
        try:
            for entry in entries:
                self._callers[entry.name] = self._make_caller(entry, callback_group)
        except Exception as exc:  # noqa: B902 - e.g. an invalid topic or service name
            self.destroy()
            raise ValueError(f"robot action '{entry.name}': cannot reach {entry.kind} "
                             f"'{entry.target}': {exc}") from None
        if registry is not None:
            self.register(registry)

    def _make_caller(self, entry: Entry, group: Any) -> Caller:
        ros_type, layout = self._types[entry.name], self._layouts[entry.name]
        if entry.kind == 'service':
            return ServiceCaller(self.node, entry, ros_type, layout, group)
        if entry.kind == 'action':
            return ActionCaller(self.node, entry, ros_type, layout, group)
        if entry.kind == 'read':
            return TopicReader(self.node, entry, ros_type, group)
        return TopicCaller(self.node, entry, ros_type, layout, self._after.get(entry.name))

    @classmethod
    def from_yaml(cls, node: Any, path: Union[str, os.PathLike], callback_group: Any = None,
                  **kwargs) -> 'RobotFunctions':
        """Create the bridge for the entries listed in a YAML file."""
        return cls(node, load_entries(path), callback_group, **kwargs)

    @property
    def names(self) -> List[str]:
        """Return the function names."""
        return list(self.actions)

    @property
    def functions(self) -> List[BotFunction]:
        """Return the bot functions of this bridge (one record per entry)."""
        return list(self._functions.values())

    def call(self, name: str, /, **values: Any) -> str:
        """
        Run entry ``name`` with argument ``values`` (any names, ``name`` too); return text.

        Blocks the calling thread up to the entry's bound, or until :meth:`interrupt`.
        Never raises: problems come back as ``'error: ...'`` text.
        """
        entry = self.actions.get(name)
        if entry is None:
            return f'error: unknown robot action {name!r}; available: {", ".join(self.actions)}'
        caller = self._callers.get(name)
        if caller is None:
            return f'error: {name}: the robot action bridge was shut down'
        try:
            with self._waiters.enter() as waiter:
                return caller.call(values, waiter)
        except ValueError as exc:
            return f'error: {name}: {exc}'
        except Exception as exc:  # noqa: B902 - e.g. the context shut down mid-call
            return f'error: {name}: {type(exc).__name__}: {exc}'

    def interrupt(self, reason: str = 'interrupted: the call was stopped before the service '
                                      'answered') -> int:
        """
        End every call in progress now; each returns ``'error: NAME: reason ...'``.

        A topic publication sends its ``after:`` message, an action goal is cancelled; a
        service request already sent cannot be taken back (its late response is dropped).
        Returns how many calls were interrupted.
        """
        return self._waiters.interrupt(reason)

    def _make_record(self, entry: Entry, enabled: bool) -> BotFunction:
        params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=ARG_TYPES[a.type]) for a in entry.args]
        signature = inspect.Signature(params, return_annotation=str)

        def robot_action(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            return self.call(entry.name, **bound.arguments)

        robot_action.__name__ = entry.name
        robot_action.__doc__ = entry.description
        robot_action.__signature__ = signature
        limits = {a.name: a.limits() for a in entry.args if a.limits()}
        bound_s = entry.longest() + (CANCEL_WAIT_S if entry.kind == 'action' else 0.0)
        # never run by a registry's test() (testable=False): it moves the robot
        record = BotFunction(name=entry.name, func=robot_action, docs=entry.description,
                             enabled=enabled, signature=signature,
                             arg_docs={a.name: a.description for a in entry.args},
                             testable=False, timeout=bound_s + 1.0, source='ros',
                             limits=limits, confirm=entry.confirm)
        # an integer field's range bounds its argument too (constrained calls)
        for slot in self._layouts[entry.name].slots:
            bounds = INT_RANGES.get(slot.field) if slot.arg_type is int else None
            if bounds:
                prop = record.schema['properties'][slot.arg]
                prop['minimum'] = max(bounds[0], prop.get('minimum', bounds[0]))
                prop['maximum'] = min(bounds[1], prop.get('maximum', bounds[1]))
        return record

    def register(self, registry: Any) -> List[BotFunction]:
        """
        Also register every function in ``registry`` (replacing older robot actions there).

        For library users who call functions through a ``FunctionRegistry`` (NanoLLM's
        ``BotFunctions`` front: ``BotFunctions.registry()``); the node does not. Raises
        ``ValueError`` when a name is taken by a function that is not a robot action.
        """
        for name in self.actions:
            existing = registry.find(name)
            if existing is not None and existing.source != 'ros':
                raise ValueError(f"robot action '{name}' has the same name as the bot "
                                 f'function {existing.name}; rename the action')
        for name, record in self._functions.items():
            self._functions[name] = registry.register(
                record.func, name=name, docs=record.docs, enabled=record.enabled,
                signature=record.signature, arg_docs=dict(record.arg_docs), testable=False,
                timeout=record.timeout, source='ros', schema=dict(record.schema),
                limits=dict(record.limits), confirm=record.confirm)
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

    def destroy(self, reason: str = 'the robot action bridge was shut down') -> None:
        """
        Interrupt the calls in progress, let them end, then destroy every handle.

        A publication in progress sends its ``after:`` message and a goal is cancelled
        before its handles go (within ``FINISH_S``).
        """
        self.interrupt(reason)
        self.unregister()
        callers, self._callers = dict(self._callers), {}
        for caller in callers.values():
            caller.finish(FINISH_S)
        detached = [caller.detach() for caller in callers.values()]
        if any(detached):
            time.sleep(DETACH_S)  # the executor's next wait set is built without them
        for caller in callers.values():
            try:
                caller.destroy()
            except Exception:  # noqa: B902 - the node may already be gone
                pass


RosServiceFunctions = RobotFunctions  # the name of the service-only bridge it grew from

__all__ = ['RobotFunctions', 'RosServiceFunctions', 'resolve']

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
The node's parameters: the settings table (``ros2_nano_llm.settings``) declared on a node.

This is the ROS edge of the table: it turns each ``ParamSpec`` row into a
``ParameterDescriptor`` and a declaration, reads the values back into a frozen
``NodeConfig`` (``settings.Settings``) and checks a parameter change against the row's
kind (``live``, ``reload``, ``startup``; see ``ros2_nano_llm.settings``).
"""

import array
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)
from rclpy.parameter import Parameter

from ..settings import (APIS, BUSY_POLICIES, changed, LIVE, PARAMS, ParamSpec, plain, RELOAD,
                        SAMPLING, Settings, SPECS, STARTUP)

__all__ = ('APIS', 'BUSY_POLICIES', 'LIVE', 'RELOAD', 'STARTUP', 'PARAMS', 'SPECS', 'SAMPLING',
           'ParamSpec', 'NodeConfig', 'descriptor', 'declare', 'read', 'check_change',
           'changed', 'tool_choice_problem', 'typed')

# every parameter of the node as plain values, one frozen snapshot (fields from PARAMS)
NodeConfig = Settings

_TYPE_WORDS = {bool: 'a boolean', int: 'an integer', float: 'a float (with a decimal point)',
               str: 'a string', tuple: "a list of strings such as ['DATE', 'TIME']"}
_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          tuple: ParameterType.PARAMETER_STRING_ARRAY}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Build the ROS parameter descriptor of ``spec``: type, range and description."""
    desc = ParameterDescriptor(
        name=spec.name, type=_TYPES[spec.type], description=spec.description,
        additional_constraints=spec.constraints)
    if spec.type is tuple:
        # an empty YAML list ([]) loads as a bool or byte array: take any array type
        # here and check the values in NodeConfig.problem()
        desc.dynamic_typing = True
    if spec.low is not None and spec.type is int:
        desc.integer_range = [IntegerRange(from_value=int(spec.low),
                                           to_value=int(spec.high), step=1)]
    elif spec.low is not None and spec.type is float:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    return desc


def declare(node: Any) -> NodeConfig:
    """
    Declare every parameter on ``node`` (overrides from --params-file apply); return them.

    Raises ValueError naming the parameter when an override has the wrong type or range.
    """
    for spec in PARAMS:
        default = list(spec.default) if spec.type is tuple else spec.default
        try:
            node.declare_parameter(spec.name, default, descriptor(spec))
        except Exception as error:  # noqa: BLE001 - rclpy raises several types; all mean this
            raise ValueError(f"parameter '{spec.name}': {error}; expected "
                             f'{_TYPE_WORDS[spec.type]} such as {spec.default!r}'
                             ) from error
    # an empty list from a params file arrives untyped (NOT_SET, dumped as null) or as a
    # bool/byte array: hold it as the string array it is, now and on every later set
    node.add_pre_set_parameters_callback(typed)
    lists = [node.get_parameter(spec.name) for spec in PARAMS if spec.type is tuple]
    node.set_parameters([param for param, fixed in zip(lists, typed(lists)) if param is not fixed])
    config = read(node)
    problem = config.problem()
    if problem:
        raise ValueError(problem)
    return config


def typed(parameters: List[Parameter]) -> List[Parameter]:
    """
    Return ``parameters`` with each empty string-list setting typed as an empty string array.

    A YAML ``[]`` carries no element type: rclpy takes it for a bool or byte array or leaves
    the parameter unset, and ``ros2 param dump`` then writes ``null`` (an old dump's
    ``builtin_functions: null`` arrives as the string 'null'). Each of these means "none", so
    a dump restarts the node with the same settings and the type stays a string array.
    (rclpy's pre-set callback: it may rewrite the parameters being set.)
    """
    return [Parameter(p.name, Parameter.Type.STRING_ARRAY, [])
            if p.name in SPECS and SPECS[p.name].type is tuple and _empty(p.value) else p
            for p in parameters]


def _empty(value: Any) -> bool:
    if value is None or value == 'null':
        return True
    return isinstance(value, (list, tuple, array.array)) and len(value) == 0


def read(node: Any) -> NodeConfig:
    """Return the node's current parameter values as a NodeConfig."""
    return NodeConfig(**{spec.name: plain(node.get_parameter(spec.name).value, spec)
                         for spec in PARAMS})


def check_change(config: NodeConfig, changes: Iterable[Any], model_loaded: bool,
                 state: str) -> Tuple[Optional[NodeConfig], str]:
    """
    Check a parameter change (rclpy ``Parameter`` objects) against the rows' kinds.

    The kinds (``live``, ``reload``, ``startup``) are described in ``ros2_nano_llm.settings``.

    Returns ``(new_config, '')`` when it may go ahead (``new_config`` is None when no
    parameter of ours changed), or ``(None, reason)`` when it must be refused.
    """
    values: Dict[str, Any] = {}
    for param in changes:
        spec = SPECS.get(param.name)
        if spec is None:
            continue  # not ours (use_sim_time, qos overrides): rclpy's own rules apply
        value = plain(param.value, spec)
        same = value == getattr(config, param.name)
        if spec.kind == STARTUP and not same:
            return None, (f"'{param.name}' is read-only: it is read once when the node starts "
                          f'(give it with --params-file or -p {param.name}:=...)')
        if spec.kind == RELOAD and model_loaded and not same:
            return None, (f"'{param.name}' needs the model to be loaded again and the node is "
                          f'{state}: deactivate and clean up the node, set it, then configure '
                          'again')
        values[param.name] = param.value
    if not values:
        return None, ''
    try:
        return config.updated(values), ''
    except (TypeError, ValueError) as error:
        return None, str(error)


def tool_choice_problem(choice: str, function_names: Sequence[str]) -> str:
    """Return why ``tool_choice`` cannot apply to the loaded functions, or ''."""
    names = list(function_names)
    if choice in ('auto', 'none') or (choice == 'required' and names) or choice in names:
        return ''
    if not names:
        return (f'tool_choice {choice!r} needs bot functions and none are loaded (set '
                "functions_file or builtin_functions and configure again, or use 'auto')")
    return (f"tool_choice {choice!r} is not 'auto', 'required', 'none' nor a loaded "
            f"function ({', '.join(names)})")


ROOM_SETTINGS = ('system_prompt', 'wrap_tokens', 'reply_prefix')  # what the chat must fit


def change_refusal(config: NodeConfig, changes: Iterable[Any], state: str, session: Any,
                   function_names: Sequence[str]) -> str:
    """
    Return why a parameter change must be refused now, or '' (the node's parameter callback).

    Beyond ``check_change``: settings that would make every prompt fail (no room left for
    the chat, see ``ChatSession.room_problem``) and a ``tool_choice`` the loaded functions
    cannot serve (while unconfigured it is checked at configure).
    """
    new, reason = check_change(config, changes, state != 'unconfigured', state)
    if reason or new is None:
        return reason
    if session is not None and session.history is not None and \
            any(getattr(new, n) != getattr(config, n) for n in ROOM_SETTINGS):
        reason = session.room_problem(new.system_prompt, new.wrap_tokens, new.reply_prefix)
    if not reason and new.tool_choice != config.tool_choice and state != 'unconfigured':
        reason = tool_choice_problem(new.tool_choice, function_names)
    return reason


def describe(config: NodeConfig, names: Sequence[str], limit: int = 120) -> str:
    """Return ``name=value, ...`` of ``names`` for the log, each value cut at ``limit``."""
    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= limit else f'{text[:limit - 20]}... ({len(text)} chars)'
    return ', '.join(f'{name}={short(getattr(config, name))}' for name in names)

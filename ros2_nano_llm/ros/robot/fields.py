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
ROS interface types by name and message fields by dotted path (``target.position.x``).

Everything here is resolved once, at configure: :func:`import_type` turns
``geometry_msgs/msg/Twist`` into the class, :func:`field_type` walks a path through nested
messages and says the type of the field it ends at, :func:`check_fits` says whether an
argument of a Python type may fill it. At call time :func:`fill` sets a value by path and
:func:`get` reads one; :func:`message_text` is what the model reads back.
"""

from dataclasses import dataclass
import importlib
import json
import math
import re
from typing import Any, Dict, List, Sequence, Tuple

# interface kinds as written in a type name, and the part of the type the arguments fill
KINDS = ('msg', 'srv', 'action')
_TYPE_RE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)/(?:(msg|srv|action)/)?([A-Za-z_][A-Za-z0-9_]*)$')
INT_RANGES: Dict[str, Tuple[int, int]] = {
    f'{s}int{b}': ((0, 2 ** b - 1) if s else (-2 ** (b - 1), 2 ** (b - 1) - 1))
    for s in ('', 'u') for b in (8, 16, 32, 64)}
INT_RANGES['char'] = (0, 255)
INT_RANGES['octet'] = (0, 255)
FLOAT_FIELDS = ('float', 'double')
PRIMITIVES = 'boolean, integers, float/double, string'


def import_type(type_name: str, kind: str) -> Any:
    """
    Import an interface type by name: ``std_srvs/srv/SetBool`` -> ``std_srvs.srv.SetBool``.

    ``kind`` is ``msg``, ``srv`` or ``action``; it may be left out of the name
    (``std_srvs/SetBool``). Raises ValueError saying what is missing.
    """
    word = {'msg': 'message', 'srv': 'service', 'action': 'action'}[kind]
    match = _TYPE_RE.match(type_name.strip())
    if not match or match.group(2) not in (None, kind):
        raise ValueError(f"{word} type must look like 'pkg/{kind}/Name', got {type_name!r}")
    package, _, name = match.groups()
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError:
        raise ValueError(f"unknown {word} type '{type_name}': package '{package}' has no "
                         f'Python interfaces installed (install it or source its '
                         f'workspace)') from None
    found = getattr(module, name, None)
    parts = {'srv': ('Request', 'Response'), 'action': ('Goal', 'Result', 'Feedback'),
             'msg': ('get_fields_and_field_types',)}[kind]
    if found is None or not all(hasattr(found, p) for p in parts):
        raise ValueError(f"unknown {word} type '{type_name}': '{package}.{kind}' has no "
                         f"{word} '{name}'")
    return found


def is_message(value: Any) -> bool:
    """Return True for a ROS message instance (or class)."""
    return hasattr(value, 'get_fields_and_field_types')


def field_type(msg_class: Any, path: str, part: str, type_name: str) -> str:
    """
    Return the type (``'double'``, ``'geometry_msgs/Vector3'``) of the field at ``path``.

    ``part`` names what is walked (``request``, ``goal``, ``message``) and ``type_name`` the
    interface, for the error: a ValueError that lists the fields where the path went wrong.
    """
    current, walked = msg_class(), ''
    names = path.split('.')
    for i, name in enumerate(names):
        fields = current.get_fields_and_field_types()
        if name not in fields:
            if not walked:
                where = f'{type_name} {part} fields are'
            else:
                where = f"{type_name} {part} field '{walked}' has the fields"
            raise ValueError(f"needs {part} field '{path}', but {where}: "
                             f"{', '.join(fields) or 'none'}")
        walked = f'{walked}.{name}' if walked else name
        if i < len(names) - 1:
            current = getattr(current, name)
            if not is_message(current):
                raise ValueError(f"needs {part} field '{path}', but '{walked}' is a "
                                 f"'{fields[name]}', not a message")
    return fields[names[-1]]


def check_fits(field: str, arg_type: type) -> bool:
    """Return True if a value of ``arg_type`` (bool, int, float, str) may fill a ``field``."""
    if arg_type is bool:
        return field == 'boolean'
    if arg_type is int:
        return field in INT_RANGES or field in FLOAT_FIELDS
    if arg_type is float:
        return field in FLOAT_FIELDS
    return field in ('string', 'wstring') or bool(re.match(r'^w?string<=\d+$', field))


def primitive_problem(field: str, path: str, part: str) -> str:
    """Return why a constant cannot go into ``field`` (a message or a sequence), or ''."""
    if '/' in field or '<' in field and not field.startswith(('string<', 'wstring<')) \
            or '[' in field:
        return (f"{part} field '{path}' is of type '{field}' (only primitive fields: "
                f'{PRIMITIVES})')
    return ''


def convert(value: Any, field: str, label: str) -> Any:
    """
    Return ``value`` as ``field`` takes it (ints for float fields become floats).

    Raises ValueError naming ``label`` for a value of the wrong kind or out of range.
    """
    if field == 'boolean':
        if not isinstance(value, bool):
            raise ValueError(f"'{label}' must be bool, got {value!r}")
        return value
    if field in INT_RANGES or field in FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"'{label}' must be a number, got {value!r}")
        if field in FLOAT_FIELDS:
            if not math.isfinite(value):
                raise ValueError(f"'{label}' must be a finite number, got {value!r}")
            return float(value)
        if not isinstance(value, int):
            raise ValueError(f"'{label}' must be int, got {value!r}")
        low, high = INT_RANGES[field]
        if not low <= value <= high:
            raise ValueError(f"'{label}' must be in [{low}, {high}], got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"'{label}' must be str, got {value!r}")
    return value


def fill(msg: Any, path: str, value: Any) -> None:
    """Set the field at dotted ``path`` of ``msg`` (the path was resolved at configure)."""
    *parents, name = path.split('.')
    for parent in parents:
        msg = getattr(msg, parent)
    setattr(msg, name, value)


def get(msg: Any, path: str) -> Any:
    """Return the value at dotted ``path`` of ``msg``."""
    for name in path.split('.'):
        msg = getattr(msg, name)
    return msg


def value_text(value: Any) -> str:
    """Return one field's value as the model reads it (JSON-like, messages as ``{...}``)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if is_message(value):
        return '{' + message_text(value) + '}'
    if hasattr(value, 'tolist'):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(value_text(v) for v in value) + ']'
    return str(value)


def message_text(msg: Any, paths: Tuple[str, ...] = ()) -> str:
    """Return fields of ``msg`` as text: ``success: true, message: "ok"`` (``done`` if none)."""
    paths = paths or tuple(msg.get_fields_and_field_types())
    if not paths:
        return 'done'
    return ', '.join(f'{path}: {value_text(get(msg, path))}' for path in paths)


def check_arg(value: Any, arg_type: type, label: str) -> Any:
    """Return ``value`` if it is of ``arg_type`` (ints taken for float); else ValueError."""
    if arg_type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) != (arg_type is bool) or not isinstance(value, arg_type):
        raise ValueError(f"'{label}' must be {arg_type.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class Slot:
    """One field an argument fills: its path and its ROS type (resolved at configure)."""

    arg: str
    path: str
    field: str
    arg_type: type


class Layout:
    """
    How one message class is filled: constant fields (``set``) and argument fields by path.

    ``key`` names the constants in errors (``set``, or ``after`` for a stop message).

    Built at configure; raises ValueError naming ``where`` and the field for an unknown
    path, a non-primitive target or a constant that does not fit.
    """

    def __init__(self, msg_class: Any, type_name: str, part: str, where: str,
                 args: Sequence[Tuple[str, str, type]] = (),
                 constants: Sequence[Tuple[str, Any]] = (), key: str = 'set'):
        self.msg_class = msg_class
        self.slots: List[Slot] = []
        for name, path, arg_type in args:
            kind = _ARG_NAMES[arg_type]
            try:
                field = field_type(msg_class, path, part, type_name)
            except ValueError as exc:
                raise ValueError(f"{where}: arg '{name}' {exc} (set field: to one of them)"
                                 ) from None
            if not check_fits(field, arg_type):
                raise ValueError(f"{where}: arg '{name}' ({kind}) cannot fill {part} field "
                                 f"'{path}' of type '{field}' (only primitive fields: "
                                 f'{PRIMITIVES})')
            self.slots.append(Slot(name, path, field, arg_type))
        self.constants: List[Tuple[str, Any]] = []
        for path, value in constants:
            try:
                field = field_type(msg_class, path, part, type_name)
                problem = primitive_problem(field, path, part)
                if problem:
                    raise ValueError(problem)
                self.constants.append((path, convert(value, field, path)))
            except ValueError as exc:
                raise ValueError(f"{where}: {key} '{path}': {exc}") from None
        try:
            self.build({})  # a constant the message refuses (a too long string) fails here
        except (AssertionError, TypeError, ValueError) as exc:
            raise ValueError(f'{where}: {exc}') from None

    def build(self, values: Dict[str, Any]) -> Any:
        """Return a new message: defaults, the constants, then each given argument's value."""
        msg = self.msg_class()
        for path, value in self.constants:
            fill(msg, path, value)
        for slot in self.slots:
            if slot.arg not in values:
                continue
            value = check_arg(values[slot.arg], slot.arg_type, slot.arg)
            try:
                fill(msg, slot.path, convert(value, slot.field, slot.arg))
            except (AssertionError, TypeError) as exc:
                raise ValueError(f"bad value for '{slot.arg}': {exc}") from None
        return msg


_ARG_NAMES = {bool: 'bool', int: 'int', float: 'float', str: 'str'}

__all__ = ['FLOAT_FIELDS', 'INT_RANGES', 'KINDS', 'Layout', 'Slot', 'check_arg', 'check_fits',
           'convert', 'field_type', 'fill', 'get', 'import_type', 'is_message', 'message_text',
           'primitive_problem', 'value_text']

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
The entries of a ``functions_file``: YAML -> checked :class:`Entry` records (no rclpy).

The file is bounded before it is parsed (:data:`MAX_FILE_BYTES`, :data:`MAX_ENTRIES`,
:data:`MAX_TEXT_CHARS`) and YAML aliases (``*name``) are refused, so a "billion laughs"
file or a 50 MB one fails at once with the reason. Each entry names exactly one of
``service``, ``topic``, ``action`` or ``read``; see ``config/functions.yaml`` for the keys.
Types and field paths are not looked at here (``fields.py`` resolves them at configure).
"""

from dataclasses import dataclass, field
import keyword
import math
import os
import re
import stat
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml

ARG_TYPES = {'bool': bool, 'int': int, 'float': float, 'str': str}
DEFAULT_TIMEOUT = 5.0
MAX_FILE_BYTES = 256 * 1024   # a file with MAX_ENTRIES long entries fits well under this
MAX_ENTRIES = 256
MAX_TEXT_CHARS = 4096         # one description, one constant string
MAX_RATE_HZ = 100.0
KIND_KEYS = ('service', 'topic', 'action', 'read')
_COMMON_KEYS = {'name', 'description', 'args', 'type', 'timeout', 'confirm', 'set'}
_KEYS = {'service': _COMMON_KEYS,
         'topic': _COMMON_KEYS | {'rate_hz', 'duration', 'after'},
         'action': _COMMON_KEYS | {'fields'},
         'read': {'name', 'description', 'type', 'fields', 'confirm'}}
_ARG_KEYS = {'name', 'type', 'description', 'field', 'min', 'max', 'choices'}
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_PATH_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$')
_TYPE_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*/(?:(?:msg|srv|action)/)?[A-Za-z_][A-Za-z0-9_]*$')


@dataclass(frozen=True)
class Arg:
    """One argument: its name, Python type name, the field it fills, and its limits."""

    name: str
    type: str  # noqa: A003 - the YAML key
    description: str = ''
    field: str = ''
    min: Optional[float] = None  # noqa: A003 - the YAML key
    max: Optional[float] = None  # noqa: A003 - the YAML key
    choices: Tuple[str, ...] = ()

    @property
    def request_field(self) -> str:
        """Return the dotted path of the field this argument fills (``field`` or the name)."""
        return self.field or self.name

    def limits(self) -> Dict[str, Any]:
        """Return the JSON schema limits of the argument: minimum, maximum, enum."""
        out: Dict[str, Any] = {}
        if self.min is not None:
            out['minimum'] = self.min
        if self.max is not None:
            out['maximum'] = self.max
        if self.choices:
            out['enum'] = list(self.choices)
        return out


@dataclass(frozen=True)
class Entry:
    """
    One robot function: a service call, a topic publication, an action goal or a reader.

    Exactly one of ``service``, ``topic``, ``action``, ``read`` is set (the ROS name);
    ``set`` and ``after`` are ``((path, value), ...)`` constants; ``duration`` is fixed
    seconds, or ``duration_arg`` names the argument that gives them.
    """

    name: str
    description: str
    service: str = ''
    type: str = ''  # noqa: A003 - the YAML key
    args: Tuple[Arg, ...] = field(default_factory=tuple)
    timeout: float = DEFAULT_TIMEOUT
    topic: str = ''
    action: str = ''
    read: str = ''
    set: Tuple[Tuple[str, Any], ...] = ()  # noqa: A003 - the YAML key
    rate_hz: float = 0.0
    duration: float = 0.0
    duration_arg: str = ''
    after: Optional[Tuple[Tuple[str, Any], ...]] = None
    fields: Tuple[str, ...] = ()
    confirm: bool = False

    @property
    def kind(self) -> str:
        """Return ``service``, ``topic``, ``action`` or ``read``."""
        return next(k for k in KIND_KEYS if getattr(self, k))

    @property
    def target(self) -> str:
        """Return the ROS name the entry reaches (service, topic or action name)."""
        return getattr(self, self.kind)

    def field_args(self) -> Tuple[Arg, ...]:
        """Return the arguments that fill a field (not the one giving the duration)."""
        return tuple(a for a in self.args if a.name != self.duration_arg)

    def longest(self) -> float:
        """Return the longest time a call may take before its result (the call's bound)."""
        if self.kind != 'topic':
            return self.timeout
        arg = next((a for a in self.args if a.name == self.duration_arg), None)
        return (arg.max if arg is not None else self.duration) + self.timeout


def _fail(where: str, what: str) -> None:
    raise ValueError(f'{where}: {what}')


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _text(value: Any, where: str, what: str) -> str:
    text = '' if value is None else str(value)
    if len(text) > MAX_TEXT_CHARS:
        _fail(where, f'{what} has {len(text)} characters; at most {MAX_TEXT_CHARS} are taken')
    return ' '.join(text.split())


def _identifier(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or keyword.iskeyword(value):
        _fail(where, f'{what} must be a Python identifier (not a keyword), got {value!r}'
                     + (" (quote YAML words such as 'on': unquoted they read as true)"
                        if isinstance(value, bool) else ''))
    return value


def _path(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not _PATH_RE.match(value):
        _fail(where, f'{what} must be a dotted field path such as linear.x, got {value!r}')
    return value


def _constants(raw: Any, where: str, key: str) -> Tuple[Tuple[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        _fail(where, f'{key} must be a mapping of field path -> value, got {raw!r}')
    out = []
    for path, value in raw.items():
        _path(path, where, f'{key} key')
        if not isinstance(value, (bool, int, float, str)) or (
                isinstance(value, float) and not math.isfinite(value)):
            _fail(where, f"{key}: '{path}' must be a bool, number or string, got {value!r}")
        if isinstance(value, str):
            _text(value, where, f"{key}: '{path}'")
        out.append((path, value))
    return tuple(out)


def _parse_arg(raw: Any, where: str) -> Arg:
    if not isinstance(raw, dict):
        _fail(where, f'each arg must be a mapping with name and type, got {raw!r}')
    unknown = set(raw) - _ARG_KEYS
    if unknown:
        _fail(where, f'unknown key(s) {sorted(unknown)}; allowed: {sorted(_ARG_KEYS)}')
    name = raw.get('name')
    if not isinstance(name, str) or not _NAME_RE.match(name):
        _fail(where, f'arg name must be a Python identifier, got {name!r} '
                     "(quote YAML words such as 'on': unquoted they read as true)")
    if keyword.iskeyword(name):
        _fail(where, f'arg name {name!r} is a Python keyword: a call cannot name it; '
                     'rename it and set field: to the field it fills')
    type_name = raw.get('type')
    if type_name not in ARG_TYPES:
        _fail(where, f"arg '{name}' has type {type_name!r}; use one of {', '.join(ARG_TYPES)}")
    request_field = raw.get('field', '') or ''
    if request_field:
        _path(request_field, where, f"arg '{name}': field")
    low, high, choices = raw.get('min'), raw.get('max'), raw.get('choices')
    for key, value in (('min', low), ('max', high)):
        if value is not None and (type_name not in ('int', 'float') or not _number(value)):
            _fail(where, f"arg '{name}': {key} must be a number, for an int or float arg; "
                         f'got {value!r}')
        if value is not None and type_name == 'int' and not isinstance(value, int):
            _fail(where, f"arg '{name}': {key} must be an integer for an int arg, got {value!r}")
    if low is not None and high is not None and low > high:
        _fail(where, f"arg '{name}': min {low} is above max {high}")
    if choices is not None:
        if type_name != 'str' or not isinstance(choices, list) or not choices or not all(
                isinstance(c, str) for c in choices):
            _fail(where, f"arg '{name}': choices must be a non-empty list of strings, for a "
                         f'str arg; got {choices!r}')
        choices = tuple(_text(c, where, f"arg '{name}': a choice") for c in choices)
    return Arg(name, type_name, _text(raw.get('description'), where, f"arg '{name}' description"),
               request_field, low, high, choices or ())


def _duplicates(values: List[str]) -> List[str]:
    return sorted({v for v in values if values.count(v) > 1})


def _parse_topic(raw: Dict[str, Any], args: Tuple[Arg, ...], where: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    rate = raw.get('rate_hz', 0.0)
    if not _number(rate) or not 0.0 <= rate <= MAX_RATE_HZ:
        _fail(where, f'rate_hz must be a number in [0, {MAX_RATE_HZ:g}], got {rate!r}')
    out['rate_hz'] = float(rate)
    duration = raw.get('duration')
    if isinstance(duration, str):
        arg = next((a for a in args if a.name == duration), None)
        if arg is None or arg.type not in ('int', 'float') or arg.field:
            _fail(where, f"duration '{duration}' must name an int or float arg without "
                         'field: (its value is the seconds to publish for)')
        if arg.max is None or arg.min is None or arg.min < 0:
            _fail(where, f"duration arg '{duration}' needs min (>= 0) and max: the robot "
                         'must never be told to move for an unbounded time')
        out['duration_arg'] = duration
    elif duration is not None:
        if not _number(duration) or duration <= 0:
            _fail(where, f'duration must be a positive number of seconds or an arg name, '
                         f'got {duration!r}')
        out['duration'] = float(duration)
    if rate and duration is None:
        _fail(where, 'rate_hz needs a duration (seconds, or the arg that gives them)')
    if 'after' in raw:
        if duration is None:
            _fail(where, 'after: needs a duration (the message published when it ends)')
        out['after'] = _constants(raw['after'] or {}, where, 'after')
    return out


def _parse_entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        _fail(where, f'each entry must be a mapping (name, description, args, one of '
                     f'{", ".join(KIND_KEYS)}, type, ...), got {type(raw).__name__}')
    name = _identifier(raw.get('name'), where, 'name')
    where = f"{where} ('{name}')"
    kinds = [k for k in KIND_KEYS if k in raw]
    if len(kinds) != 1:
        _fail(where, f'name exactly one of {", ".join(KIND_KEYS)}' +
              (f' (got {", ".join(kinds)})' if kinds else ' (service is required)'))
    kind = kinds[0]
    unknown = set(raw) - _KEYS[kind] - {kind}
    if unknown:
        _fail(where, f'unknown key(s) {sorted(unknown)}; allowed for a {kind} entry: '
                     f'{sorted(_KEYS[kind] | {kind})}')
    for key in (kind, 'type'):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            _fail(where, f'{key} is required (a string)')
    type_name = raw['type'].strip()
    if not _TYPE_RE.match(type_name):
        example = {'service': 'std_srvs/srv/SetBool', 'action': 'nav2_msgs/action/'
                   'NavigateToPose'}.get(kind, 'geometry_msgs/msg/Twist')
        _fail(where, f"type must look like '{example}', got {raw['type']!r}")
    timeout = raw.get('timeout', DEFAULT_TIMEOUT)
    if not _number(timeout) or timeout <= 0:
        _fail(where, f'timeout must be a positive number of seconds, got {timeout!r}')
    raw_args = raw.get('args') or []
    if not isinstance(raw_args, list):
        _fail(where, 'args must be a list')
    if len(raw_args) > MAX_ENTRIES:
        _fail(where, f'{len(raw_args)} args; at most {MAX_ENTRIES} are taken')
    args = tuple(_parse_arg(a, f'{where} arg {i}') for i, a in enumerate(raw_args))
    confirm = raw.get('confirm', False)
    if not isinstance(confirm, bool):
        _fail(where, f'confirm must be true or false, got {confirm!r}')
    extra = _parse_topic(raw, args, where) if kind == 'topic' else {}
    paths = [a.request_field for a in args if a.name != extra.get('duration_arg')]
    dupes = _duplicates([a.name for a in args]) or _duplicates(paths)
    if dupes:
        _fail(where, f'duplicate arg name(s) or field(s): {", ".join(dupes)}')
    constants = _constants(raw.get('set'), where, 'set')
    taken = sorted({p for p, _ in constants} & set(paths))
    if taken:
        _fail(where, f'set: gives field(s) {", ".join(taken)} that an arg fills too')
    fields = raw.get('fields') or []
    if not isinstance(fields, list) or len(fields) > MAX_ENTRIES:
        _fail(where, f'fields must be a list of field paths, got {fields!r}')
    return Entry(name=name, description=_text(raw.get('description'), where, 'description'),
                 type=type_name, args=args, timeout=float(timeout), set=constants,
                 fields=tuple(_path(f, where, 'each of fields') for f in fields),
                 confirm=confirm, **{kind: raw[kind].strip()}, **extra)


def parse_entries(data: Any, origin: str = 'robot actions') -> List[Entry]:
    """
    Validate parsed YAML (a list of entries, or ``{actions: [...]}``) into entries.

    ``None`` or an empty list means none. Raises ``ValueError`` naming the entry and the
    problem.
    """
    if isinstance(data, dict) and set(data) == {'actions'}:
        data = data['actions']
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f'{origin}: expected a list of actions, got {type(data).__name__}')
    if len(data) > MAX_ENTRIES:
        raise ValueError(f'{origin}: {len(data)} entries; at most {MAX_ENTRIES} are taken')
    entries = [_parse_entry(raw, f'{origin}: action {i}') for i, raw in enumerate(data)]
    dupes = _duplicates([e.name for e in entries])
    if dupes:
        raise ValueError(f'{origin}: duplicate action name(s): {", ".join(dupes)}')
    return entries


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases (``*name``): no expansion, no YAML bomb."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ValueError(f'YAML aliases (*name) are not allowed here (line {mark.line + 1}'
                             f', column {mark.column + 1}); write the value out')
        return super().compose_node(parent, index)


def read_bounded(path: str, limit: int = MAX_FILE_BYTES) -> str:
    """Return the text of the regular file ``path``, refusing one over ``limit`` bytes."""
    try:
        # O_NONBLOCK: opening a fifo (or a device) must not wait for a writer
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), 'rb') as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f'robot actions file {path!r} is not a regular file')
            if info.st_size > limit:
                raise ValueError(f'robot actions file {path!r} has {info.st_size} bytes; at '
                                 f'most {limit} are taken')
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f'cannot read robot actions file {path!r}: {exc.strerror}') from None
    if len(data) > limit:  # it grew while being read
        raise ValueError(f'robot actions file {path!r} has over {limit} bytes')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ValueError(f'robot actions file {path!r} is not UTF-8: {exc}') from None


def load_entries(path: Union[str, os.PathLike]) -> List[Entry]:
    """Load and validate a ``functions_file`` (bounded; aliases refused), or raise ValueError."""
    path = os.fspath(path)
    text = read_bounded(path)
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ValueError(f'robot actions file {path!r} is not valid YAML: {exc}') from None
    except ValueError as exc:
        raise ValueError(f'robot actions file {path!r}: {exc}') from None
    except RecursionError:
        raise ValueError(f'robot actions file {path!r} nests too deeply') from None
    return parse_entries(data, origin=path)


__all__ = ['ARG_TYPES', 'Arg', 'DEFAULT_TIMEOUT', 'Entry', 'KIND_KEYS', 'MAX_ENTRIES',
           'MAX_FILE_BYTES', 'load_entries', 'parse_entries', 'read_bounded']

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
The service-only names of the robot bridge, kept for their users; the code is in ``robot/``.

``RosServiceFunctions`` is :class:`robot.RobotFunctions`, ``RobotAction`` an
:class:`robot.Entry`, ``ActionArg`` an :class:`robot.Arg`; see ``robot/`` and
``config/functions.yaml`` for the four kinds of entries (service, topic, action, read).
"""

from typing import Any, Dict

from .robot.bridge import resolve, RobotFunctions, RosServiceFunctions
from .robot.entries import (Arg as ActionArg, ARG_TYPES, DEFAULT_TIMEOUT, Entry as RobotAction,
                            load_entries as load_actions, parse_entries as parse_actions)
from .robot.fields import import_type, Layout, message_text as response_to_text


def resolve_service_type(type_name: str) -> Any:
    """Import a service type by name: ``std_srvs/srv/SetBool`` -> ``std_srvs.srv.SetBool``."""
    return import_type(type_name, 'srv')


def check_action_type(action: RobotAction) -> Any:
    """Resolve an entry's type and check its field paths; return the type (ValueError)."""
    return resolve(action)[0]


def build_request(msg_type: Any, action: RobotAction, values: Dict[str, Any]) -> Any:
    """
    Build a request (or any message of ``msg_type``) from argument values.

    Raises ``ValueError`` with a short message for a value of the wrong type or out of
    the field's range; fields without an argument keep their defaults.
    """
    msg_class = msg_type.Request if hasattr(msg_type, 'Request') else msg_type
    args = [(a.name, a.request_field, ARG_TYPES[a.type]) for a in action.args]
    return Layout(msg_class, action.type, 'request', f"robot action '{action.name}'",
                  args).build(values)


__all__ = ['ARG_TYPES', 'ActionArg', 'DEFAULT_TIMEOUT', 'RobotAction', 'RobotFunctions',
           'RosServiceFunctions', 'build_request', 'check_action_type', 'load_actions',
           'parse_actions', 'resolve_service_type', 'response_to_text']

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
Robot functions: the entries of a ``functions_file`` as bot functions (drives rclpy).

- ``entries``: the YAML file -> checked entries (bounded; aliases refused)
- ``fields``: interface types by name, message fields by dotted path, messages as text
- ``caller``: what the bridge asks of a caller; ``service``, ``topic``, ``action``,
  ``reader``: the caller of each kind of entry
- ``waiting``: the calls in progress and their interrupt
- ``bridge``: :class:`RobotFunctions`, the entries as ``BotFunction`` records

The node builds the bridge at configure and keeps it for its configured life::

    bridge = RobotFunctions(node, load_entries(path), ReentrantCallbackGroup())
    model.generate(..., functions=bridge.functions)   # drive(speed=0.2, seconds=2.0) runs
    bridge.interrupt('stopped')   # every call in progress ends (stop message, goal cancel)
    bridge.destroy()              # ... and the handles go
"""

from .bridge import resolve, RobotFunctions, RosServiceFunctions
from .entries import Arg, Entry, load_entries, parse_entries

__all__ = ['Arg', 'Entry', 'RobotFunctions', 'RosServiceFunctions', 'load_entries',
           'parse_entries', 'resolve']

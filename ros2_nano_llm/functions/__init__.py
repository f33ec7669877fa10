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
Function calling: the bot function registry, call detection/parsing and built-ins.

``from ros2_nano_llm.functions import FunctionRegistry, CallDetector, execute`` (and NanoLLM's
``BotFunctions``, ``bot_function``, a front over the default registry). How a template's
model writes a call and reads its result is its ``ToolSyntax`` (``functions.syntax``);
calls run on a ``CallRunner`` (``functions.runner``). Nothing here imports ``chat``.
The ROS service bridge lives in ``ros.ros_bridge`` (it drives rclpy).
"""

from .parsing import (CallDetector, execute, find_calls, format_result, parse_json_call,
                      ToolCall)
from .record import FunctionRecord
from .registry import bot_function, BotFunction, BotFunctions, default_registry, \
    FunctionRegistry
from .runner import CallRunner
from .syntax import SYNTAXES, ToolSyntax

__all__ = ['BotFunction', 'BotFunctions', 'CallDetector', 'CallRunner', 'FunctionRecord',
           'FunctionRegistry', 'SYNTAXES', 'ToolCall', 'ToolSyntax', 'bot_function',
           'default_registry', 'execute', 'find_calls', 'format_result', 'parse_json_call']

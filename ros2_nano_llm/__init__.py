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
ros2_nano_llm: a local, multi-turn, multimodal LLM chat for ROS 2 robots.

The library imports without ROS::

    from ros2_nano_llm import NanoLLM, ChatHistory

Heavy modules load on first use, so ``import ros2_nano_llm.msg`` (the generated ROS
interfaces installed beside this package) stays cheap.
"""

__all__ = ['NanoLLM', 'ChatHistory', 'ChatMessage', 'ChatTemplate', 'ChatTemplates',
           'StreamingResponse', 'BotFunctions', 'FunctionRegistry', 'bot_function']

_EXPORTS = {
    'NanoLLM': ('.llm', 'NanoLLM'),
    'ChatHistory': ('.chat.history', 'ChatHistory'),
    'ChatMessage': ('.chat.message', 'ChatMessage'),
    'ChatTemplate': ('.chat.templates', 'ChatTemplate'),
    'ChatTemplates': ('.chat.templates', 'ChatTemplates'),
    'StreamingResponse': ('.chat.stream', 'StreamingResponse'),
    'BotFunctions': ('.functions.registry', 'BotFunctions'),
    'FunctionRegistry': ('.functions.registry', 'FunctionRegistry'),
    'bot_function': ('.functions.registry', 'bot_function'),
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

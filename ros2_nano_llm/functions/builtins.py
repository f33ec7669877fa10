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
Built-in bot functions (no network): ``DATE()`` and ``TIME()``.

Importing this module registers nothing: ``FunctionRegistry.load_builtins()`` (or NanoLLM's
``BotFunctions.load()`` for the default registry) registers them.
"""

from datetime import datetime


def DATE() -> str:  # noqa: N802,D401 - the model calls it by this name
    """Returns the current date."""  # noqa: D401 - NanoLLM's text, shown to the model
    now = datetime.now()
    return f'{now:%A}, {now:%B} {now.day} {now.year}'


def TIME() -> str:  # noqa: N802,D401 - the model calls it by this name
    """Returns the current time."""  # noqa: D401 - NanoLLM's text, shown to the model
    now = datetime.now()
    return f'{now.hour % 12 or 12}:{now:%M} {now:%p}'


BUILTINS = {'DATE': DATE, 'TIME': TIME}

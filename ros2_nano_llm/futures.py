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
"""Work handed to another thread, with its result in a ``concurrent.futures.Future``."""

from concurrent.futures import Future
from typing import Any, Callable


def run_into(future: Future, fn: Callable[[], Any]) -> None:
    """Run ``fn()`` (unless ``future`` was cancelled) and set its result or error on ``future``."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except BaseException as error:  # noqa: B902 - handed to whoever waits on the Future
        future.set_exception(error)

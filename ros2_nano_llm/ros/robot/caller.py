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
"""What the bridge asks of the caller of each kind of entry (service, topic, action, read)."""

from abc import ABC, abstractmethod
from typing import Any, Dict, Optional

from .entries import Entry
from .fields import Layout
from .waiting import Waiter


class Caller(ABC):
    """Runs the calls of one entry through the ROS handle it creates on ``node``."""

    def __init__(self, node: Any, entry: Entry, layout: Optional[Layout] = None):
        self.entry = entry
        self.layout = layout
        self._node = node

    @abstractmethod
    def call(self, values: Dict[str, Any], waiter: Waiter) -> str:
        """Run one call with argument ``values``; return the text the model reads."""

    def finish(self, timeout: float) -> None:
        """Let a call in progress end before the handle goes (default: nothing to wait for)."""

    def detach(self) -> bool:
        """Take the handle out of the executor's waits before :meth:`destroy`; True if done."""
        return False

    @abstractmethod
    def destroy(self) -> None:
        """Destroy the ROS handle."""


__all__ = ['Caller']

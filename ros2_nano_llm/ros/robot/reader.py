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
The reader of a ``read:`` entry: the latest message on a topic, subscribed at configure.

A call returns the entry's ``fields:`` (all fields when none are listed) and the message's
age, or ``no message yet on /topic``.
"""

import threading
import time
from typing import Any, Dict, Optional, Tuple

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from .caller import Caller
from .entries import Entry
from .fields import message_text
from .waiting import Waiter

# best effort matches reliable and best-effort publishers alike (sensors use both)
READ_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.BEST_EFFORT)


class TopicReader(Caller):
    """Keeps the latest message of one topic (its subscription is created here)."""

    def __init__(self, node: Any, entry: Entry, msg_type: Any, callback_group: Any):
        super().__init__(node, entry)
        self._lock = threading.Lock()
        self._latest: Optional[Tuple[Any, float]] = None
        # no QoS event handlers (see topic.py): the bridge is destroyed while the node spins
        self._subscription = node.create_subscription(
            msg_type, entry.read, self._on_message, READ_QOS, callback_group=callback_group,
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))

    def _on_message(self, msg: Any) -> None:
        with self._lock:
            self._latest = (msg, time.monotonic())

    def call(self, values: Dict[str, Any], waiter: Waiter) -> str:
        """Return the chosen fields of the latest message and its age."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return f'no message yet on {self.entry.read}'
        msg, received = latest
        age = time.monotonic() - received
        return f'{message_text(msg, self.entry.fields)} (age {age:.2f} s)'

    def destroy(self) -> None:
        """Destroy the subscription."""
        self._node.destroy_subscription(self._subscription)

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
The caller of a ``topic:`` entry: one message, or a stream of them and a stop message.

Once something subscribes to the topic (within the entry's ``timeout``), it publishes one
message, or publishes it at ``rate_hz`` for a duration and then the
``after:`` message (for ``/cmd_vel``: the zero Twist).

The ``after:`` message goes out however the publishing ends: its time is up, an interrupt
(``~/stop``, a cancelled goal, an interrupting prompt, deactivate), the bridge shutting
down, or an error while publishing. The robot is never left with the last command.
"""

import threading
import time
from typing import Any, Dict, Optional

from rclpy.event_handler import PublisherEventCallbacks

from .caller import Caller
from .entries import Entry
from .fields import Layout
from .waiting import Waiter


class TopicCaller(Caller):
    """Publishes the messages of one entry through its publisher (created here)."""

    def __init__(self, node: Any, entry: Entry, msg_type: Any, layout: Layout,
                 after: Optional[Layout], qos: Any = 10):
        super().__init__(node, entry, layout)
        self._after = after
        self._lock = threading.Lock()  # one publication sequence at a time per topic
        # no QoS event handlers: destroying one while the executor waits on it ends the
        # process (rclpy), and the bridge is destroyed at cleanup while the node spins
        self._publisher = node.create_publisher(
            msg_type, entry.topic, qos,
            event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
        self.after_count = 0  # 'after' messages published (shown in the log and tests)

    def call(self, values: Dict[str, Any], waiter: Waiter) -> str:
        """Publish as the entry says; return what was done."""
        entry = self.entry
        msg = self.layout.build(values)
        duration = float(values[entry.duration_arg]) if entry.duration_arg else entry.duration
        # a message nobody takes is lost: the robot would not move and the model be misled
        deadline = time.monotonic() + entry.timeout
        if not waiter.ready(lambda: self._publisher.get_subscription_count() > 0, deadline):
            return f'error: {entry.name}: ' + (waiter.reason or (
                f'nothing subscribes to {entry.topic} (waited {entry.timeout:g} s); nothing '
                'was published'))
        if duration <= 0.0 and not entry.duration_arg:
            self._publisher.publish(msg)
            return f'published on {entry.topic}'
        with self._lock:
            return self._publish_for(msg, duration, waiter)

    def _publish_for(self, msg: Any, duration: float, waiter: Waiter) -> str:
        entry = self.entry
        start = time.monotonic()
        end = start + duration
        period = 1.0 / entry.rate_hz if entry.rate_hz > 0 else None
        sent, ended = 0, ''
        try:
            self._publisher.publish(msg)
            sent = 1
            while time.monotonic() < end:
                next_at = min(end, start + sent * period) if period else end
                while time.monotonic() < next_at and waiter.pause(next_at - time.monotonic()):
                    pass
                if waiter.reason:
                    ended = waiter.reason
                    break
                if period and time.monotonic() < end:
                    self._publisher.publish(msg)
                    sent += 1
        finally:
            self._send_after()
        elapsed = time.monotonic() - start
        if ended:
            return (f'error: {entry.name}: {ended} after {elapsed:.2f} s of {duration:g} s '
                    f'({sent} messages on {entry.topic}; stop message sent)')
        return f'done: published on {entry.topic} for {duration:g} s ({sent} messages)'

    def _send_after(self) -> None:
        if self._after is None:
            return
        self._publisher.publish(self._after.build({}))
        self.after_count += 1

    def finish(self, timeout: float) -> None:
        """
        Let a publication in progress end (it was interrupted) before the publisher goes.

        If it does not end within ``timeout``, the ``after:`` message is published from here.
        """
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
            return
        try:
            self._send_after()
        except Exception:  # noqa: B902 - the context may be gone already
            pass

    def destroy(self) -> None:
        """Destroy the publisher."""
        self._node.destroy_publisher(self._publisher)

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
The robot calls in progress, each one a :class:`Waiter` that :meth:`Waiters.interrupt` ends.

A call runs on a plain thread (never an executor callback) and waits in short slices on its
waiter's event; a ROS future's done callback or an interrupt wakes it at once.
"""

from contextlib import contextmanager
import threading
import time
from typing import Any, Callable, Iterator, Set

POLL_S = 0.05  # the longest a wait sleeps without looking (a missed wake-up costs this)


class Waiter:
    """One call's wait: woken by its futures or by an interrupt (``reason`` then says why)."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.reason = ''

    def stop(self, reason: str) -> None:
        """End the wait now with ``reason``."""
        self.reason = reason
        self.wake.set()

    def pause(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (or a wake-up); return False once interrupted."""
        if not self.reason and seconds > 0:
            self.wake.wait(min(seconds, POLL_S))
            if not self.reason:
                self.wake.clear()
        return not self.reason

    def ready(self, is_ready: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``is_ready`` says so; return False if interrupted or past ``deadline``."""
        while not is_ready():
            if not self.pause(deadline - time.monotonic()) or time.monotonic() >= deadline:
                return False
        return True

    def until(self, future: Any, deadline: float) -> bool:
        """Wait for ``future`` until ``deadline``; return True if it is done (not interrupted)."""
        future.add_done_callback(lambda _: self.wake.set())
        while not future.done():
            if not self.pause(deadline - time.monotonic()) or time.monotonic() >= deadline:
                return future.done()
        return True


class Waiters:
    """The waits of the calls in progress; :meth:`interrupt` ends all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: Set[Waiter] = set()

    @contextmanager
    def enter(self) -> Iterator[Waiter]:
        """Register a new waiter for the ``with`` block."""
        waiter = Waiter()
        with self._lock:
            self._waiting.add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                self._waiting.discard(waiter)

    def interrupt(self, reason: str) -> int:
        """End every wait in progress with ``reason``; return how many there were."""
        with self._lock:
            waiters = list(self._waiting)
        for waiter in waiters:
            waiter.stop(reason)
        return len(waiters)


__all__ = ['POLL_S', 'Waiter', 'Waiters']

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
How the node's process ends on SIGINT and SIGTERM: once, in order, however many arrive.

A terminal's Ctrl-C reaches the node, and ``ros2 launch`` forwards a second SIGINT (and
escalates to SIGTERM later). With Python's own handler each one raises ``KeyboardInterrupt``
wherever the main thread is, so the second one lands in the middle of the first one's
shutdown; and while the interpreter finalizes, Python has put SIG_DFL back, so a SIGINT then
kills the process (exit code -2, "process has died" under launch).

``ShutdownSignals`` is entered by ``main()`` before ``rclpy.init()``. The first signal raises
``KeyboardInterrupt`` once in the main thread and every later one is logged and ignored (once
main() is done: SIG_IGN). The node (``run.py``) and the sim keep rclpy's own handlers out,
so their context stays up until they have ended their work; the web node lets rclpy's
handler run first (wake its executor, shut the context down), then this one. After a
signal, ``exit_after`` bounds the end of the process: a thread that cannot be interrupted
(a model load inside ``configure``) does not keep it alive for longer than ``LINGER_S``.
"""

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Dict, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
LINGER_S = 3.0  # after main() is done: how long a thread still running may hold the exit
# (under ros2 launch, within its 5 s before SIGTERM and 10 s before SIGKILL)


class ShutdownSignals:
    """The process's SIGINT and SIGTERM handler for the node's life: the first one counts."""

    def __init__(self, log: Callable[[str], Any]) -> None:
        """Report ignored signals through ``log`` (a logger's ``info``)."""
        self.received: Optional[int] = None
        self._ending = False
        self._log = log
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> 'ShutdownSignals':
        """Install the handler (main thread only, before ``rclpy.init()``)."""
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        """Ignore these signals from now on if the node's end began; else put the old ones back."""
        # The process is ending: a further signal must not cut it short while the interpreter
        # joins threads or finalizes (Python puts SIG_DFL back for its own handlers then, so
        # a SIGINT there would kill the process: exit code -2). Only SIG_IGN outlives that.
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self._ending else previous)

    def ending(self) -> None:
        """Say that the node's orderly end has begun: from now on a signal only bounds it."""
        self._ending = True

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        name = signal.Signals(signum).name
        first = self.received is None
        if first:
            self.received = signum
        if not first or self._ending:
            self._log(f'{name}: already shutting down; ignored')
            return
        raise KeyboardInterrupt(name)

    def exit_after(self, code: int, linger_s: float = LINGER_S) -> None:
        """
        After a signal, end the process with ``code`` within ``linger_s``, whatever still runs.

        Threads that are not daemons (a model load, a thread pool's worker) are joined by the
        interpreter at exit; one that cannot be interrupted would keep a Ctrl-C'd node alive.
        Without a signal this does nothing: a normal end waits for its threads.
        """
        if self.received is None:
            return

        def leave() -> None:
            self._log(f'threads still running {linger_s:g} s after the shutdown; exiting')
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        timer = threading.Timer(linger_s, leave)
        timer.daemon = True
        timer.start()

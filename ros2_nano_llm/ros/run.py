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
The node's process: rclpy, the executor, the signals, and a clean exit (code 0).

``run(make_node)`` runs the node ``make_node()`` builds until Ctrl-C, SIGTERM or the
shutdown transition (the node's ``finalized`` future). The node's chat is stopped before the
node and the context go, so a reply that streams at that moment ends quietly, and a robot
call in progress ends as on ``~/stop``: its ``after:`` message is published and its goal
cancelled while the executor still spins and the context is still up. So rclpy's own signal
handlers (which shut the context down first) are left out: the executor spins on a thread of
its own, and the main thread waits where a signal can reach it. Only the first SIGINT or
SIGTERM counts (``signals``): the ones that follow it, as under ``ros2 launch``, cannot cut
the shutdown short.
"""

import os
import threading
from typing import Any, Callable, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from .compat import initialized
from .signals import ShutdownSignals

EXECUTOR_THREADS = 4
SHUTDOWN_WAIT_S = 10.0


def run(make_node: Callable[[], Any], args: Optional[List[str]] = None,
        logger: str = 'nano_llm') -> int:
    """
    Run the node until it is finalized or the process is signalled; return the exit code.

    The node has ``finalized`` (an rclpy future: done ends the run) and ``release()``
    (ends its work, on exit in any state); ``make_node()`` raising ``ValueError`` means bad
    parameters (exit code 1). ``logger`` names the process's log lines.
    """
    log = rclpy.logging.get_logger(logger)
    stopping = ShutdownSignals(log.info)
    with stopping:  # the process's only SIGINT/SIGTERM handler (rclpy's are left out)
        try:
            with initialized(args, signal_handlers=False):
                try:
                    node = make_node()
                except ValueError as error:
                    log.fatal(f'bad parameters: {error}')
                    return 1
                executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
                executor.add_node(node)
                spinning = Spinning(executor, node.finalized)
                try:
                    spinning.wait()  # a signal raises KeyboardInterrupt here
                finally:
                    stopping.ending()
                    node.release()  # the executor still spins: robot calls end cleanly
                    executor.shutdown(timeout_sec=SHUTDOWN_WAIT_S)
                    spinning.join(SHUTDOWN_WAIT_S)
                    node.destroy_node()
                spinning.raise_error()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
    stopping.exit_after(0)
    return 0


class Spinning:
    """The executor spinning on a thread of its own until ``until`` (an rclpy future) is done."""

    def __init__(self, executor: Any, until: Any):
        self.error: Optional[BaseException] = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._spin, args=(executor, until),
                                        name='executor')
        self._thread.start()

    def _spin(self, executor: Any, until: Any) -> None:
        try:
            executor.spin_until_future_complete(until)
        except ExternalShutdownException:
            pass
        except BaseException as error:  # noqa: B902 - raised again in the main thread
            self.error = error
        finally:
            self._ended.set()

    def wait(self) -> None:
        """Wait in the main thread, where signals land, until the spinning ends."""
        while not self._ended.wait(0.5):
            pass

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for the spinning thread to end."""
        self._thread.join(timeout)

    def raise_error(self) -> None:
        """Raise what ended the spinning, if it failed."""
        if self.error is not None:
            raise self.error


def quiet_progress_bars() -> None:
    """Keep model loading's tqdm bars ('Loading weights 0%|...') out of the node's log."""
    # the process is the node's own, so it may say so for the libraries it loads
    os.environ.setdefault('HF_HUB_DISABLE_PROGRESS_BARS', '1')
    os.environ.setdefault('TQDM_DISABLE', '1')
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass

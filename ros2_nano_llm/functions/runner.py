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
Run bot functions on one thread pool, each bounded by a timeout, and keep count of overruns.

A Python thread cannot be killed, so a function that runs past its timeout goes on. The
:class:`CallRunner` never loses sight of it: the call is cancelled if it has not started
yet, else it is kept in :meth:`CallRunner.running` (with a warning in the log) until it
ends, when it is logged again. The caller gets ``timed out`` text at once.
"""

from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, TimeoutError
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .calltext import short

log = logging.getLogger(__name__)


class CallRunner:
    """
    Runs function calls on an executor: ``executor`` given, or its own, made on first use.

    ``running()`` lists the calls still running past their timeout. ``close()`` shuts its
    own executor down without waiting for them.
    """

    def __init__(self, executor: Optional[ThreadPoolExecutor] = None, max_workers: int = 4):
        self._executor = executor
        self._owned = executor is None
        self._max_workers = max_workers
        self._overdue: Dict[Future, Tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._max_workers,
                                                    thread_name_prefix='bot-function')
            return self._executor

    def run(self, func: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any],
            timeout: float, name: str = '') -> Tuple[bool, Any]:
        """
        Call ``func`` on the pool, waiting at most ``timeout`` seconds.

        Returns ``(True, value)``, or ``(False, short error text)`` when it raised or timed
        out; a timed-out call is cancelled, or recorded as still running.
        """
        name = name or 'function'
        future = self._pool().submit(func, *args, **kwargs)
        try:
            return True, future.result(timeout)
        except TimeoutError:
            if not future.cancel():  # it started: it runs on, kept in running()
                self._keep(future, name, timeout)
            return False, f'timed out after {timeout:g} s'
        except CancelledError:
            return False, 'cancelled'
        except BaseException as exc:  # noqa: B902 - any failure becomes error text
            return False, f'{type(exc).__name__}: {short(exc)}'

    def _keep(self, future: Future, name: str, timeout: float) -> None:
        with self._lock:
            self._overdue[future] = (name, time.monotonic())
        log.warning('bot function %s still running after its %g s timeout', name, timeout)
        future.add_done_callback(self._ended)

    def _ended(self, future: Future) -> None:
        with self._lock:
            name, since = self._overdue.pop(future, ('function', time.monotonic()))
        log.warning('bot function %s ended %.1f s after its timeout', name,
                    time.monotonic() - since)

    def running(self) -> List[str]:
        """Return the names of the calls still running past their timeout."""
        with self._lock:
            return [name for name, _ in self._overdue.values()]

    def close(self) -> None:
        """Shut down the runner's own executor (calls still running are not waited for)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._owned:
            executor.shutdown(wait=False, cancel_futures=True)


__all__ = ['CallRunner']

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
ends, when it is logged again. The caller gets ``timed out`` text at once. Each one holds a
pool thread, so a runner given ``max_overdue`` starts no new call while that many run on
past their timeout: the pool it shares (the node's) keeps threads for everything else.

A call may pass a ``gate`` first, on the same pool thread and inside the call's
:class:`~.context.CallContext`: the checks that must come right before the function starts
(an operator's approval, the reply's stop flag). Its wait is bounded on its own
(``gate_timeout``), so the function's ``timeout`` counts from the moment it starts; a gate
that refuses, or that the caller stopped waiting for, never lets the function run.
"""

from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, TimeoutError
from contextlib import nullcontext
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .calltext import short
from .context import CallContext, running

log = logging.getLogger(__name__)


class CallRunner:
    """
    Runs function calls on an executor: ``executor`` given, or its own, made on first use.

    ``running()`` lists the calls still running past their timeout; with ``max_overdue``
    (None: no bound) that many of them refuse every new call until one ends. ``close()``
    shuts its own executor down without waiting for them.
    """

    def __init__(self, executor: Optional[ThreadPoolExecutor] = None, max_workers: int = 4,
                 max_overdue: Optional[int] = None):
        self._executor = executor
        self._owned = executor is None
        self._max_workers = max_workers
        self._max_overdue = max_overdue
        self._overdue: Dict[Future, Tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._max_workers,
                                                    thread_name_prefix='bot-function')
            return self._executor

    def run(self, func: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any],
            timeout: float, name: str = '', *, gate: Optional[Callable[[], str]] = None,
            gate_timeout: float = 0.0, context: Optional[CallContext] = None
            ) -> Tuple[bool, Any]:
        """
        Call ``func`` on the pool, waiting at most ``timeout`` seconds.

        Returns ``(True, value)``, or ``(False, short error text)`` when it raised or timed
        out; a timed-out call is cancelled, or recorded as still running. ``context`` is the
        call's (current on the pool thread while the gate and the function run). ``gate``
        runs first and returns '' to let the function start, or why not: then
        ``(False, reason)`` comes back and the function never runs; so too when the gate
        takes longer than ``gate_timeout`` seconds, and when ``max_overdue`` calls still run.
        """
        name = name or 'function'
        overdue = self.running()
        if self._max_overdue is not None and len(overdue) >= self._max_overdue:
            return False, (f'{len(overdue)} calls still run past their timeout '
                           f'({", ".join(sorted(set(overdue)))}); no call starts until one ends')
        opened = threading.Event()  # the gate let the function start (or the job ended)
        state = {'phase': 'gate'}   # 'gate' -> 'running', or -> 'abandoned' by the caller

        def job() -> Any:
            with running(context) if context is not None else nullcontext():
                reason = gate() if gate is not None else ''
                with self._lock:
                    if reason or state['phase'] == 'abandoned':
                        return _Refusal(reason or f'no decision within {gate_timeout:g} s')
                    state['phase'] = 'running'
                opened.set()
                return func(*args, **kwargs)

        future = self._pool().submit(job)
        future.add_done_callback(lambda _: opened.set())
        if gate is not None and not opened.wait(gate_timeout):
            with self._lock:
                abandoned = state['phase'] == 'gate'
                if abandoned:
                    state['phase'] = 'abandoned'
            if abandoned:
                future.cancel()
                return False, f'no decision within {gate_timeout:g} s'
        try:
            value = future.result(timeout)
            if isinstance(value, _Refusal):
                return False, value.reason
            return True, value
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
        if not self._owned:
            return  # the pool is its owner's (the node's): it stays for the runner's calls
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class _Refusal:
    """What a job returns when its gate kept the function from running."""

    def __init__(self, reason: str):
        self.reason = reason


__all__ = ['CallRunner']

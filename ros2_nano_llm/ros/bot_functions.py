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
The node's bot functions: which ones the model may call, and ``~/call_function``'s calls.

At configure ``NodeFunctions.load()`` makes the node's own list of records (no
process-wide registry is written) from ``builtin_functions`` (library functions such as
``DATE``) and ``functions_file`` (robot functions: services, topics, actions and readers,
see ``robot``; the file is parsed on the node's pool, bounded in size).
``serve_call()`` runs one ``~/call_function`` request on the node's pool and awaits it
without holding an executor thread; at most ``MAX_CALLS_RUNNING`` run at once.
"""

from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
import threading
from typing import Any, Callable, List, Optional

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future as RclFuture

from .edge import failed, log_outcome, Report
from .robot import load_entries, RobotFunctions
from ..functions import FunctionRegistry, parse_json_call
from ..functions.guard import CallPolicy
from ..functions.runner import CallRunner

MAX_CALL_NAME_CHARS = 256     # ~/call_function: longest function name taken
MAX_CALL_ARGS_CHARS = 1 << 16  # ... and longest args_json
MAX_CALLS_RUNNING = 16        # ~/call_function calls in progress at once; more are refused
PARSE_TIMEOUT_S = 10.0        # functions_file parsing (bounded anyway: size, entries, no aliases)
STOPPED = 'interrupted by ~/stop before the call ended; the action may not have finished'


class NodeFunctions:
    """The bot functions of one node, from configure to cleanup."""

    def __init__(self, node: Any, pool: Executor, policy: CallPolicy, approval: Any):
        self._node = node
        self._pool = pool
        self._policy = policy  # every call: limits, approval, stop flag, events (guard.py)
        self._approval = approval  # the operator's decisions (approval.OperatorApproval)
        self._running = threading.BoundedSemaphore(MAX_CALLS_RUNNING)
        self._interrupts = 0  # interrupt() calls so far: a ~/call_function taken before one
        # of them never starts
        self.records: Optional[FunctionRegistry] = None  # the enabled functions (None: none)
        self.bridge: Optional[RobotFunctions] = None

    @property
    def names(self) -> List[str]:
        """Return the names of the enabled functions."""
        return [f.name for f in self.records or ()]

    def load(self, config: Any) -> Optional[FunctionRegistry]:
        """
        Return the bot functions the model may call (None: function calling is off).

        Runs in ``on_configure`` before the model loads; raises ValueError saying what to
        fix (the caller then calls ``unload()``).
        """
        registry = FunctionRegistry()  # the node's own: nothing module-level is written
        try:
            registry.load_builtins(config.builtin_functions)
        except ValueError as error:
            raise ValueError(f'builtin_functions: {error}') from None
        functions: List[Any] = list(registry)
        if config.functions_file:
            parsing = self._pool.submit(load_entries, config.functions_file)  # off the executor
            try:
                entries = parsing.result(timeout=PARSE_TIMEOUT_S)
            except FutureTimeout:
                raise ValueError(f"'{config.functions_file}' was not parsed within "
                                 f'{PARSE_TIMEOUT_S:g} s') from None
            # a group of this configure's own: an rclpy group keeps a weak reference to
            # every entity ever added to it (a node-long group grew at each configure)
            self.bridge = RobotFunctions(self._node, entries,
                                         callback_group=ReentrantCallbackGroup())
            clash = sorted(set(self.bridge.names) & {f.name for f in functions})
            if clash:
                raise ValueError(f"robot action(s) {', '.join(clash)} in "
                                 f"'{config.functions_file}' have the name of a built-in "
                                 'function; rename them')
            functions.extend(self.bridge.functions)
            # (a service is the kind the file has always had: only the others are named)
            services = ', '.join(f'{a.name} -> {a.target}' + (
                '' if a.kind == 'service' else f' ({a.kind})')
                for a in self.bridge.actions.values())
            self._node.get_logger().info(f"robot actions from '{config.functions_file}': "
                                         f"{services or 'none (the file lists none)'}")
        # their calls run on the node's pool too (a ~/call_function request holds two threads
        # of it: the request's and the call's)
        # at most MAX_CALLS_RUNNING calls hold a pool thread past their timeout (node.py sizes
        # the pool for them, the ~/call_function requests and the chat's own jobs)
        runner = CallRunner(self._pool, max_overdue=MAX_CALLS_RUNNING)
        self.records = FunctionRegistry(functions, self._policy, runner) if functions else None
        return self.records

    def unload(self) -> None:
        """Undo ``load()``: interrupt waiting calls and destroy the clients."""
        bridge, records = self.bridge, self.records
        self.bridge = self.records = None
        if bridge is not None:
            bridge.destroy()
        if records is not None:
            records.runner.close()

    def interrupt(self, reason: str = STOPPED, denial: str = '') -> int:
        """
        End the robot calls in progress now (stop message sent, goal cancelled); count them.

        ``reason`` is what an ended robot call returns. ``~/stop`` and ``~/reset`` (the
        default ``reason``) and a ``denial`` (deactivate) also deny every call waiting for
        approval, and keep the ``~/call_function`` calls already taken from starting; a
        stopped reply's own waiting calls end by its stop flag.
        """
        denied = 0
        if reason == STOPPED or denial:
            self._interrupts += 1
            denied = self._approval.deny_all(denial or 'the call was stopped (~/stop or ~/reset)')
        bridge = self.bridge
        return denied + (bridge.interrupt(reason) if bridge is not None else 0)

    def list_into(self, response: Any) -> Any:
        """Fill a ``~/list_functions`` response."""
        functions = list(self.records or ())
        response.names = [f.name for f in functions]
        response.descriptions = [f.doc_line() for f in functions]
        response.docs = FunctionRegistry(functions).generate_docs()
        return response

    async def serve_call(self, request: Any, response: Any, incidents: Any) -> Any:
        """Answer one ``~/call_function`` request (a coroutine: no executor thread waits)."""
        if not self._running.acquire(blocking=False):
            return failed(response, f'{MAX_CALLS_RUNNING} calls are in progress already; '
                          'call again when one has ended', Report.RESULT)
        try:
            taken = self._interrupts  # a ~/stop, ~/reset or deactivate after this: not run
            response.result = await self._in_pool(
                lambda: self.call(request.name, request.args_json,
                                  lambda: self._interrupts != taken))
            response.success = not response.result.startswith('error:')
        except Exception as error:  # noqa: BLE001 - the callback's edge: report, go on
            failed(response, incidents.failed('~/call_function', error), Report.RESULT)
        finally:
            self._running.release()
        args = request.args_json.strip() or '{}'
        line = (f'~/call_function {request.name[:80]}({args[:200]}'
                f"{'...' if len(args) > 200 else ''}) -> {response.result[:300]}")
        log_outcome(self._node.get_logger(), response.success, line)
        return response

    def call(self, name: str, args_json: str,
             stopped: Optional[Callable[[], bool]] = None) -> str:
        """
        Run one call of ``~/call_function`` (a pool thread); return the result text.

        ``stopped()`` True keeps it from starting (checked right before it starts).
        """
        functions = self.records
        if not functions:
            return ('error: no bot functions are enabled on this node (set functions_file or '
                    'builtin_functions and configure again)')
        if len(name) > MAX_CALL_NAME_CHARS:
            return f'error: the function name is {len(name)} characters long; no name is'
        if len(args_json) > MAX_CALL_ARGS_CHARS:
            return (f'error: args_json is {len(args_json)} characters long; at most '
                    f'{MAX_CALL_ARGS_CHARS} are taken')
        # (malformed JSON gives a call with its error: refused, with its event)
        return functions.execute(parse_json_call(name, args_json), stopped)

    async def _in_pool(self, work: Callable[[], Any]) -> Any:
        # run work on the node's pool; await it without holding an executor thread
        done = RclFuture(executor=self._node.executor)
        # a done callback makes the executor wake up (and resume the awaiting coroutine)
        done.add_done_callback(lambda _: None)
        self._pool.submit(work).add_done_callback(lambda ran: _settle(done, ran))
        return await done


def _settle(done: RclFuture, ran: Future) -> None:
    # hand a pool job's outcome to the coroutine that awaits it
    if ran.cancelled():  # the pool was shut down (exit) before the job ran
        done.set_exception(RuntimeError('the node is shutting down'))
    elif ran.exception() is not None:
        done.set_exception(ran.exception())
    else:
        done.set_result(ran.result())

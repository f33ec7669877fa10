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
The robot and the watcher of the call-safety tests (limits, budget, approval, call events).

``SafetyRobot`` serves the services of test/config/functions_safety.yaml in this process and
records, with the arrival time, every request that reached it. ``CallWatch`` adds to a
``NodeClient`` what an operator's tool sees: every ``~/output/calls`` entry and
``~/output/pending_calls`` message with its arrival time, the ``~/approve_call`` service and
the ``~/generate`` action.
"""

from contextlib import contextmanager
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

from action_msgs.msg import GoalStatus
from node_harness import PretendRobot, REPO_ROOT, start_node, stop_node
import pytest
from rclpy.action import ActionClient
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros2_nano_llm.action import Generate
from ros2_nano_llm.msg import FunctionCall, PendingCall
from ros2_nano_llm.srv import ApproveCall, CallFunction
from std_srvs.srv import Trigger
from test_msgs.srv import BasicTypes

FUNCTIONS_YAML = REPO_ROOT / 'test' / 'config' / 'functions_safety.yaml'
ROBOT = '/safety_robot'
SLOW_S = 2.0  # how long the slow service takes to answer


class SafetyRobot(PretendRobot):
    """The services of functions_safety.yaml; each request kept as ``(time, action, request)``."""

    def __init__(self):
        self.answered: List[Any] = []  # (time, action) when the slow service answered
        super().__init__('safety_robot', ROBOT, threads=6, close_timeout=SLOW_S + 2.0,
                         services={'drive': (BasicTypes, self._drive),
                                   'slow': (Trigger, self._slow)})

    def entry(self, action: str, request: Any) -> Any:
        """Keep when the request arrived, too."""
        return time.monotonic(), action, request

    def names(self, mark: int = 0) -> List[str]:
        """Return the actions that reached the robot after the first ``mark`` requests."""
        return [action for _, action, _ in self.since(mark)]

    def wait_for(self, action: str, mark: int = 0, timeout: float = 30.0) -> float:
        """Wait until ``action`` reaches the robot (after ``mark``); return when it did."""
        with self._cond:
            assert self._cond.wait_for(lambda: action in self.names(mark), timeout), \
                f'{action} never reached the robot: {self.names(mark)}'
            return next(when for when, a, _ in self.since(mark) if a == action)

    def _drive(self, request: Any, response: Any) -> Any:
        self.record('drive', request)
        response.string_value = f'driving at {request.int8_value}'
        return response

    def _slow(self, request: Any, response: Any) -> Any:
        self.record('slow', request)
        time.sleep(SLOW_S)
        with self._cond:
            self.answered.append((time.monotonic(), 'slow'))
            self._cond.notify_all()
        response.success, response.message = True, 'slow done'
        return response


class CallWatch:
    """What an operator's tool sees of one node: call entries, pending calls, decisions."""

    def __init__(self, client: Any):
        self.client = client
        node, target = client.node, client.target
        self._cond = threading.Condition()
        self.calls: List[Any] = []    # (arrival time, FunctionCall)
        self.pending: List[Any] = []  # (arrival time, PendingCall)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                              reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(FunctionCall, f'{target}/output/calls',
                                 lambda m: self._keep(self.calls, m), reliable)
        node.create_subscription(PendingCall, f'{target}/output/pending_calls',
                                 lambda m: self._keep(self.pending, m), latched)
        client.clients['approve_call'] = node.create_client(ApproveCall,
                                                            f'{target}/approve_call')
        self.goals = ActionClient(node, Generate, f'{target}/generate')

    def _keep(self, into: List[Any], msg: Any) -> None:
        with self._cond:
            into.append((time.monotonic(), msg))
            self._cond.notify_all()

    def mark(self) -> tuple:
        """Return how many call entries and pending calls arrived so far."""
        with self._cond:
            return len(self.calls), len(self.pending)

    def entries(self, mark: int = 0, event: str = '', name: str = '') -> List[Any]:
        """Return the call entries after ``mark`` (of one event and name, if given)."""
        with self._cond:
            return [m for _, m in self.calls[mark:] if (not event or m.event == event)
                    and (not name or m.name == name)]

    def wait_entry(self, mark: int, event: str, name: str = '', timeout: float = 30.0,
                   ) -> tuple:
        """Wait for a call entry after ``mark``; return ``(arrival time, FunctionCall)``."""
        def found() -> Optional[tuple]:
            return next(((t, m) for t, m in self.calls[mark:] if m.event == event
                         and (not name or m.name == name)), None)
        with self._cond:
            assert self._cond.wait_for(found, timeout), \
                f'no {event!r} entry for {name or "a call"}: {self.entries(mark)}'
            return found()

    def wait_pending(self, mark: int, timeout: float = 30.0) -> Any:
        """Wait for a pending call after ``mark``; return the PendingCall."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.pending) > mark, timeout), \
                'no call was published as pending'
            return self.pending[mark][1]

    def decide(self, call_id: str, approve: bool, reason: str = '') -> Any:
        """Call ``~/approve_call``; return the response."""
        return self.client.call('approve_call', ApproveCall.Request(
            call_id=call_id, approve=approve, reason=reason), timeout=10.0)

    def call_function(self, name: str, args_json: str = '{}',
                      timeout: float = 60.0) -> Any:
        """Call ``~/call_function``; return the response."""
        return self.client.call('call_function',
                                CallFunction.Request(name=name, args_json=args_json),
                                timeout=timeout)

    def in_thread(self, work: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``work`` in a thread; return a function that waits for its result."""
        out: List[Any] = []
        thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
        thread.start()

        def result(timeout: float = 60.0) -> Any:
            thread.join(timeout)
            assert out, 'the work did not end'
            return out[0]
        return result

    def send_goal(self, prompt: str, timeout: float = 30.0, **fields: Any) -> Any:
        """Send a ``~/generate`` goal; return its accepted handle."""
        assert self.goals.wait_for_server(timeout_sec=timeout), 'no ~/generate server'
        done = threading.Event()
        future = self.goals.send_goal_async(Generate.Goal(prompt=prompt, **fields))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), 'the goal was not answered'
        handle = future.result()
        assert handle.accepted, 'the goal was rejected'
        return handle

    @staticmethod
    def wait_future(future: Any, timeout: float = 60.0) -> Any:
        """Wait for an rclpy future (bounded); return its result."""
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), 'no answer'
        return future.result()

    def goal_result(self, handle: Any, timeout: float = 60.0) -> tuple:
        """Wait for a goal's result; return ``(status, Generate.Result)``."""
        response = self.wait_future(handle.get_result_async(), timeout)
        return response.status, response.result


SUCCEEDED = GoalStatus.STATUS_SUCCEEDED


@pytest.fixture(scope='module', name='robot')
def serve_robot() -> Iterator[SafetyRobot]:
    """Serve the robot's services for the module: the ``robot`` fixture (import it)."""
    robot = SafetyRobot()
    yield robot
    robot.close()


@contextmanager
def safety_node(tmp_path_factory: Any, tiny_model_dir: Any, name: str,
                **overrides: Any) -> Iterator[tuple]:
    """Run a node on the tiny Llama with the robot's actions; yield (process, client, watch)."""
    settings = {'model': tiny_model_dir('llama'), 'functions_file': str(FUNCTIONS_YAML),
                'max_new_tokens': 8, **overrides}
    process, client = start_node(tmp_path_factory.mktemp(name), settings, name=name)
    try:
        yield process, client, CallWatch(client)
    finally:
        stop_node(process, client)


@contextmanager
def fresh(node: tuple, **params: Any) -> Iterator[tuple]:
    """Set ``params`` and clear the chat of a ``safety_node``; check it is still up after."""
    process, client, _ = node
    assert all(r.successful for r in client.set_params(**params))
    assert client.call('reset').success
    client.settle()
    yield node
    assert process.alive, process.log()[-3000:]

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
The caller of an ``action:`` entry: send one goal, report its feedback, return its result.

Each feedback is reported as it arrives (``functions.context.report('feedback', text)``),
at most one every :data:`FEEDBACK_PERIOD_S`. An interrupt (``~/stop``, a cancelled goal, an
interrupting prompt, deactivate) or the entry's ``timeout`` cancels the robot's goal and
waits at most :data:`CANCEL_WAIT_S` for the cancel to be answered.
"""

import threading
import time
from typing import Any, Dict, List, Optional

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient

from .caller import Caller
from .entries import Entry
from .fields import Layout, message_text
from .waiting import Waiter
from ...functions import context

FEEDBACK_PERIOD_S = 0.5  # at most two feedback reports a second
CANCEL_WAIT_S = 2.0      # how long an interrupted call waits for the cancel's answer
_ENDED = {GoalStatus.STATUS_ABORTED: 'aborted', GoalStatus.STATUS_CANCELED: 'canceled'}


class ActionCaller(Caller):
    """Sends the goals of one entry through its action client (created here)."""

    def __init__(self, node: Any, entry: Entry, action_type: Any, layout: Layout,
                 callback_group: Any):
        super().__init__(node, entry, layout)
        self._client = ActionClient(node, action_type, entry.action,
                                    callback_group=callback_group)
        self._lock = threading.Lock()
        self._running: List[Any] = []  # goal handles in progress, for finish()

    def call(self, values: Dict[str, Any], waiter: Waiter) -> str:
        """Send the goal, report feedback, and return the result (or why there is none)."""
        entry = self.entry
        goal = self.layout.build(values)
        deadline = time.monotonic() + entry.timeout
        if not waiter.ready(self._client.server_is_ready, deadline):
            return f'error: {entry.name}: ' + (waiter.reason or (
                f"action server '{entry.action}' is not available (waited {entry.timeout:g} s)"))
        feedback: List[Any] = []

        def on_feedback(message: Any) -> None:  # an executor thread: hand it to the caller
            feedback.append(message.feedback)
            waiter.wake.set()

        sent = self._client.send_goal_async(goal, feedback_callback=on_feedback)
        if not waiter.until(sent, deadline):
            return self._abandon(sent, waiter)
        handle = sent.result()
        if not handle.accepted:
            return f"error: {entry.name}: the goal was rejected by '{entry.action}'"
        with self._lock:
            self._running.append(handle)
        try:
            return self._follow(handle, feedback, waiter, deadline)
        finally:
            with self._lock:
                self._running.remove(handle)

    def _follow(self, handle: Any, feedback: List[Any], waiter: Waiter, deadline: float) -> str:
        entry = self.entry
        result = handle.get_result_async()
        result.add_done_callback(lambda _: waiter.wake.set())
        reported = 0.0
        while not result.done():
            now = time.monotonic()
            if feedback and now - reported >= FEEDBACK_PERIOD_S:
                latest = feedback[-1]
                feedback.clear()
                reported = now
                context.report('feedback', message_text(latest))
            if not waiter.pause(min(deadline - now, FEEDBACK_PERIOD_S)) or now >= deadline:
                why = waiter.reason or f'no result within {entry.timeout:g} s'
                return f'error: {entry.name}: {why}; {self._cancel(handle)}'
        answer = result.result()
        text = message_text(answer.result, entry.fields)
        if answer.status == GoalStatus.STATUS_SUCCEEDED:
            return text
        state = _ENDED.get(answer.status, f'ended with status {answer.status}')
        return f'error: {entry.name}: the goal was {state} by the robot ({text})'

    def _cancel(self, handle: Any) -> str:
        done = threading.Event()
        future = handle.cancel_goal_async()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(CANCEL_WAIT_S) and not future.done():
            return f"the robot's goal was asked to cancel; no answer within {CANCEL_WAIT_S:g} s"
        response = future.result()
        if response is not None and response.goals_canceling:
            return "the robot's goal was cancelled"
        return "the robot's goal was asked to cancel; the robot refused (it may have ended)"

    def _abandon(self, sent: Any, waiter: Waiter) -> str:
        # interrupted or timed out before the goal was accepted: cancel it if it is
        entry = self.entry
        why = waiter.reason or f'the goal was not accepted within {entry.timeout:g} s'
        done = threading.Event()
        sent.add_done_callback(lambda _: done.set())
        handle: Optional[Any] = sent.result() if done.wait(CANCEL_WAIT_S) else None
        if handle is not None and handle.accepted:
            return f'error: {entry.name}: {why}; {self._cancel(handle)}'
        return f'error: {entry.name}: {why}'

    def finish(self, timeout: float) -> None:
        """Cancel the goals still running (the bridge is shutting down)."""
        with self._lock:
            running = list(self._running)
        for handle in running:
            handle.cancel_goal_async()

    def detach(self) -> bool:
        """
        Remove the action client from the node's waitables (the executor wakes up).

        rclpy's executor collects the waitables, then enters each: one destroyed between the
        two steps ends the executor (InvalidHandle). Detached first and destroyed a moment
        later, the client is no longer in any wait set being built.
        """
        self._node.remove_waitable(self._client)
        return True

    def destroy(self) -> None:
        """Destroy the action client."""
        try:
            self._client.destroy()
        except ValueError:  # detach() took it off the node's waitables already
            pass

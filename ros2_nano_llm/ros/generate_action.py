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
The ``~/generate`` action: one goal is one prompt in the node's chat, its reply as feedback.

A goal goes through the node's one ``ChatWorker`` like a prompt from ``~/input/text``: it
shares the chat and the busy policy (a goal the policy would drop is rejected, the reason
logged), and its reply also goes out on ``~/output/*``. No executor thread waits for the
reply: the execute callback is a coroutine that awaits a future the worker completes; the
worker publishes each piece as feedback. Cancel stops the reply; the partial reply stays in
the chat and is the result.
"""

import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future

from . import interfaces as ifc
from .params import NodeConfig, SPECS, tool_choice_problem
from .worker import ChatWorker, Outcome, Prompt
from ..action import Generate
from ..vision.convert import shrink_to


class GoalRun:
    """One accepted goal's link to the worker: feedback out, the outcome into a future."""

    def __init__(self, goal_handle: Any, executor: Any):
        self.goal_handle = goal_handle
        self.future = Future(executor=executor)
        # a done callback makes the executor wake up (and resume the awaiting coroutine)
        self.future.add_done_callback(lambda _: None)

    def piece(self, index: int, text: str) -> None:
        """Publish one new piece of the reply as feedback (the model's worker thread)."""
        self.goal_handle.publish_feedback(Generate.Feedback(text=text, token_index=index))

    def finished(self, outcome: Outcome) -> None:
        """Hand the outcome to the awaiting execute callback."""
        if not self.future.done():
            self.future.set_result(outcome)


def goal_problem(goal: Any, function_names: Sequence[str], max_prompt_chars: int) -> str:
    """Return why ``goal`` cannot be answered as it is (before the busy policy), or ''."""
    if not goal.prompt.strip():
        return 'empty prompt: there is nothing to answer'
    if len(goal.prompt) > max_prompt_chars:
        return (f'the prompt has {len(goal.prompt)} characters, at most {max_prompt_chars} '
                'are taken')
    if goal.tool_choice:  # '' uses the node's tool_choice parameter
        problem = tool_choice_problem(goal.tool_choice, function_names)
        if problem:
            return problem
    high = int(SPECS['max_new_tokens'].high)
    if goal.max_new_tokens > high:
        return f'max_new_tokens={goal.max_new_tokens} is above the most allowed ({high})'
    return ''


class GenerateAction:
    """
    The ``~/generate`` action server of one node (from configure to cleanup).

    ``requests`` is the QoS of its goal, cancel and result services (``request_qos``):
    deep enough that a burst of goals or cancels gets every answer, a refusal included.
    While the node is inactive each goal is rejected with the reason.
    """

    def __init__(self, node: Any, worker: ChatWorker, config: Callable[[], NodeConfig],
                 function_names: Sequence[str], frame_side: int, max_prompt_chars: int,
                 requests: Any, interrupt: Callable[[str], Any] = lambda reason: 0):
        self._node = node
        self._interrupt = interrupt  # ends the robot calls of a stopped reply
        self._worker = worker
        self._config = config
        self._names = list(function_names)
        self._frame_side = frame_side
        self._max_chars = max_prompt_chars
        self._lock = threading.Condition()
        self._prompts: Dict[bytes, Prompt] = {}  # goal id -> its prompt, while it runs
        self._images: Dict[int, Any] = {}  # id(goal request) -> its image, accept to execute
        self._server = ActionServer(
            node, Generate, ifc.GENERATE, execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(), goal_service_qos_profile=requests,
            result_service_qos_profile=requests, cancel_service_qos_profile=requests)

    def wait_ended(self, timeout: float) -> bool:
        """
        Wait (at most ``timeout`` s) until no goal runs; return True if none does.

        The worker has stopped every goal's prompt first (deactivate): each goal then ends
        with its partial reply. The server stays (an inactive node rejects goals with the
        reason), so rclpy still sends each ended goal's result after this returns.
        """
        with self._lock:
            return self._lock.wait_for(lambda: not self._prompts, timeout)

    def destroy(self, timeout: float) -> None:
        """Destroy the action server once the running goals have ended (at most ``timeout`` s)."""
        self.wait_ended(timeout)
        self._server.destroy()

    def _on_goal(self, goal: Any) -> GoalResponse:
        image = None
        try:
            problem = goal_problem(goal, self._names, self._max_chars)
            if not problem and goal.image.data:
                image = self._image(goal)  # a bad image is refused now, not after acceptance
            problem = problem or self._worker.refusal()
        except ValueError as error:
            problem = f'bad image: {error}'
        except Exception as error:  # noqa: BLE001 - the callback's edge: refuse, go on
            problem = f'{type(error).__name__}: {error}'
        if problem:
            self._node.get_logger().warning(f'~/generate goal rejected: {problem}')
            return GoalResponse.REJECT
        if image is not None:  # decoded once: _execute gets the same request object
            with self._lock:
                self._images[id(goal)] = image
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        with self._lock:
            prompt = self._prompts.get(bytes(goal_handle.goal_id.uuid))
        # a waiting prompt is answered at once (its listener is gone); a running reply's
        # robot call ends now (stop message sent, the robot's goal cancelled)
        if prompt is not None and self._worker.cancel(prompt) and prompt.listener is not None:
            self._interrupt('interrupted: the ~/generate goal was cancelled')
        return CancelResponse.ACCEPT

    def _image(self, goal: Any) -> Optional[Any]:
        if not goal.image.data:
            return None
        image = ifc.frame_to_rgb(goal.image, max_size=self._config().max_image_size)
        return shrink_to(image, self._frame_side)

    async def _execute(self, goal_handle: Any) -> Any:
        goal, key = goal_handle.request, bytes(goal_handle.goal_id.uuid)
        run = GoalRun(goal_handle, self._node.executor)
        try:
            with self._lock:
                image = self._images.pop(id(goal), None)
            if image is None:
                image = self._image(goal)
            prompt = Prompt(goal.prompt, time.monotonic(), tool_choice=goal.tool_choice,
                            max_new_tokens=int(goal.max_new_tokens), image=image,
                            reset=bool(goal.reset), listener=run)
            with self._lock:
                self._prompts[key] = prompt
            taken, note = self._worker.submit(prompt)
            if taken and goal_handle.is_cancel_requested:  # cancelled before it was submitted
                self._worker.cancel(prompt)
            if not taken:
                run.finished(Outcome(error=f'goal not taken: {note}'))
            else:
                preview = goal.prompt if len(goal.prompt) <= 80 else f'{goal.prompt[:77]}...'
                self._node.get_logger().info(f'~/generate goal {preview!r}' +
                                             (f' ({note})' if note else ''))
                if note.startswith('interrupted'):
                    self._interrupt('interrupted by a new prompt')
            outcome = await run.future
        except Exception as error:  # noqa: BLE001 - the callback's edge: abort, go on
            outcome = Outcome(error=f'{type(error).__name__}: {error}')
            self._node.get_logger().error(f'~/generate goal failed: {outcome.error}')
        try:
            return self._finish(goal_handle, outcome)
        finally:
            with self._lock:
                self._prompts.pop(key, None)
                self._lock.notify_all()

    def _finish(self, goal_handle: Any, outcome: Outcome) -> Any:
        stamp = self._node.get_clock().now().to_msg()
        result = Generate.Result(
            reply=outcome.text, stop_reason=outcome.stop_reason,
            calls=[ifc.function_call(stamp, outcome.turn_id, c) for c in outcome.calls],
            time_to_first_token=round(float(outcome.stats.get('time_to_first_token', 0.0)), 3),
            decode_rate=round(float(outcome.stats.get('decode_rate', 0.0)), 1))
        if outcome.error:
            self._node.get_logger().warning(f'~/generate goal ended without a reply: '
                                            f'{outcome.error}')
        try:
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
            elif outcome.error or outcome.stop_reason in ('stopped', 'error'):
                goal_handle.abort()  # stopped by ~/stop, another prompt or deactivate
            else:
                goal_handle.succeed()
        except Exception as error:  # noqa: BLE001 - the server went (deactivate) meanwhile
            self._node.get_logger().debug(f'~/generate goal not ended: {error}')
        return result

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
r"""
An operator approves or denies bot function calls: ``~/output/pending_calls``, ``~/approve_call``.

:class:`OperatorApproval` is the node's ``functions.guard.Approver``. A call that needs
approval (its function is marked ``confirm: true``, or every call with the
``require_approval`` parameter) is published as a ``PendingCall`` (id, name, arguments,
turn, deadline) and waits, on the call's pool thread (never an executor thread), for::

    ros2 service call /nano_llm/approve_call ros2_nano_llm/srv/ApproveCall \\
        "{call_id: '4', approve: true}"

No decision within ``approval_timeout`` seconds denies it; so do ``~/stop``, ``~/reset`` and
deactivate (:meth:`OperatorApproval.deny_all`) and a stop of the reply that made the call.
The model reads ``denied by the operator: REASON`` (or ``...: no decision within N s``).
"""

from dataclasses import dataclass, field
import threading
import time
from typing import Any, Callable, Dict

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration

from . import interfaces as ifc
from ..functions.calltext import short
from ..functions.context import CallContext
from ..functions.guard import Approver
from ..functions.record import FunctionRecord
from ..msg import PendingCall
from ..srv import ApproveCall

POLL_S = 0.05  # how often a waiting call looks at its reply's stop flag


@dataclass
class _Pending:
    """One call waiting for its decision."""

    decided: threading.Event = field(default_factory=threading.Event)
    denial: str = ''  # '' approves (once decided)


class OperatorApproval(Approver):
    """
    The node's approver: publishes each pending call and waits for ``~/approve_call``.

    ``config()`` returns the node's settings (``require_approval``, ``approval_timeout``,
    read for each call, so changes apply to the next one). The publisher and the service
    live as long as the node.
    """

    def __init__(self, node: Any, config: Callable[[], Any]):
        self._node = node
        self._config = config
        self._lock = threading.Lock()
        self._pending: Dict[str, _Pending] = {}
        self._publisher = node.create_publisher(PendingCall, ifc.PENDING_CALLS,
                                                ifc.PENDING_QOS)
        # its own group: a decision is taken while other callbacks run (and while a call
        # waits for it on a pool thread)
        self._service = node.create_service(ApproveCall, ifc.APPROVE_CALL, self._on_decision,
                                            callback_group=MutuallyExclusiveCallbackGroup())

    def needed(self, record: FunctionRecord) -> bool:
        """Return True for a ``confirm`` function, or for every one with require_approval."""
        return record.confirm or bool(self._config().require_approval)

    def longest_wait(self) -> float:
        """Return ``approval_timeout``."""
        return float(self._config().approval_timeout)

    def decide(self, context: CallContext, args_json: str) -> str:
        """Publish the pending call and wait for its decision; return '' or the denial."""
        timeout = self.longest_wait()
        pending = _Pending()
        with self._lock:
            self._pending[context.call_id] = pending
        try:
            self._announce(context, args_json, timeout)
            deadline = time.monotonic() + timeout
            while not pending.decided.wait(min(POLL_S, max(deadline - time.monotonic(), 0))):
                if context.stopped():
                    # the node's own denial (~/stop, deactivate) follows the stop at once:
                    # wait one poll for its reason
                    if pending.decided.wait(POLL_S):
                        break
                    return 'denied: the reply was stopped while the call waited for approval'
                if time.monotonic() >= deadline:
                    return f'denied by the operator: no decision within {timeout:g} s'
        finally:
            with self._lock:
                self._pending.pop(context.call_id, None)
        return pending.denial

    def deny_all(self, reason: str) -> int:
        """Deny every waiting call now (``~/stop``, deactivate); return how many there were."""
        with self._lock:
            waiting = list(self._pending.values())
            self._pending.clear()
        for pending in waiting:
            pending.denial = f'denied: {reason}'
            pending.decided.set()
        return len(waiting)

    def _announce(self, context: CallContext, args_json: str, timeout: float) -> None:
        now = self._node.get_clock().now()
        msg = PendingCall(call_id=context.call_id, name=context.name, args_json=args_json,
                          turn_id=int(context.turn_id),
                          deadline=(now + Duration(seconds=timeout)).to_msg())
        msg.header.stamp = now.to_msg()
        self._publisher.publish(msg)
        self._node.get_logger().info(
            f'call {context.call_id} {context.name}({short(args_json, 200)}) waits '
            f'{timeout:g} s for approval: ros2 service call '
            f'{self._node.resolve_service_name(ifc.APPROVE_CALL)} ros2_nano_llm/srv/ApproveCall '
            f'"{{call_id: \'{context.call_id}\', approve: true}}"')

    def _on_decision(self, request: ApproveCall.Request,
                     response: ApproveCall.Response) -> ApproveCall.Response:
        with self._lock:
            pending = self._pending.pop(request.call_id, None)
        call_id = short(request.call_id, 40)
        if pending is None:
            response.success = False
            response.message = (f'no call {call_id!r} waits for approval (already decided, '
                                'timed out, or unknown)')
        else:
            reason = short(request.reason.strip(), 300) or 'no reason given'
            pending.denial = '' if request.approve else f'denied by the operator: {reason}'
            pending.decided.set()
            response.success = True
            response.message = f"call {call_id} {'approved' if request.approve else 'denied'}"
        self._node.get_logger().info(f'~/approve_call: {response.message}')
        return response


__all__ = ['OperatorApproval']

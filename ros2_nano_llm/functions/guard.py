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
What every call passes on its way to a function, and the events it reports as it goes.

Every call, whatever its source (a model's reply, the node's ``~/call_function``, a goal),
runs through ``parsing.execute`` and so through :func:`run_checked`:

1. its arguments bind to the signature and its limits (``FunctionRecord.bind``), or the
   call is refused;
2. a call that needs approval (``confirm=True``, or every call when the
   :class:`Approver` says so) waits for its decision; no approver means no approval;
3. the reply that made it must not be stopped, checked last on the pool thread, right
   before the function starts;
4. the function runs (``started``), reports progress (``feedback``, see
   :func:`.context.report`) and ends (``ended``, with its result).

A :class:`CallPolicy` holds the approver and where the :class:`CallEvent` records go (the
node publishes each on ``~/output/calls`` and logs it, at that moment); a call that never
ran is reported once, as ``refused``, with the reason the model reads. No rclpy here.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
import itertools
import logging
import threading
import time
from typing import Any, Callable, Optional, Tuple

from .calltext import short
from .context import CallContext
from .record import FunctionRecord
from .runner import CallRunner

log = logging.getLogger(__name__)

STARTED, FEEDBACK, ENDED, REFUSED = 'started', 'feedback', 'ended', 'refused'
FEEDBACK_PERIOD_S = 0.1   # a call's feedback is reported at most this often
GATE_MARGIN_S = 2.0       # the gate's wait beyond the approver's own bound
STOPPED = 'the reply was stopped'


@dataclass
class CallEvent:
    """One event of one call, as ``~/output/calls`` carries it (fields of FunctionCall.msg)."""

    event: str          # 'started', 'feedback', 'ended' or 'refused'
    call_id: str
    name: str
    args_json: str
    turn_id: int = 0
    result: str = ''    # feedback text, the result, or why the call was refused
    success: bool = False

    def line(self) -> str:
        """Return the event as one log line."""
        head = f'turn {self.turn_id} call {self.call_id} {self.name}({short(self.args_json, 200)})'
        if self.event == STARTED:
            return f'{head} started'
        if self.event == FEEDBACK:
            return f'{head} feedback: {short(self.result, 300)}'
        return f'{head} {self.event} -> {short(self.result, 300)}'


class Approver(ABC):
    """Decides whether a call may run (an operator, for the node: ``ros.approval``)."""

    def needed(self, record: FunctionRecord) -> bool:
        """Return True when a call of ``record`` must be approved first (``confirm``)."""
        return record.confirm

    @abstractmethod
    def longest_wait(self) -> float:
        """Return the most seconds :meth:`decide` waits for a decision."""

    @abstractmethod
    def decide(self, context: CallContext, args_json: str) -> str:
        """
        Wait for the decision on one call; return '' to run it, or why it is denied.

        Runs on the call's pool thread, at most :meth:`longest_wait` seconds; it ends at
        once when ``context.stopped()`` turns True.
        """


def _ignore(event: CallEvent) -> None:
    """Drop an event (nobody listens)."""


def _no_turn() -> int:
    return 0


class CallPolicy:
    """
    Where a set of functions' call events go and who approves their calls.

    ``report(event)`` takes each :class:`CallEvent` (from the thread the event happens
    on: the reply's, or the call's pool thread for feedback; a failure is logged, never
    raised into the call). ``approver`` decides the calls that need approval (None: such
    calls are refused). ``reply_turn()`` is the turn id of the reply running now (0 outside
    one). Call ids come from the policy, unique for its life.
    """

    def __init__(self, report: Callable[[CallEvent], None] = _ignore,
                 approver: Optional[Approver] = None,
                 reply_turn: Callable[[], int] = _no_turn):
        self.report = report
        self.approver = approver
        self.reply_turn = reply_turn
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self) -> str:
        """Return a fresh call id."""
        with self._lock:
            return str(next(self._ids))

    def emit(self, event: CallEvent) -> None:
        """Hand ``event`` to ``report``; a failing reporter never breaks the call."""
        try:
            self.report(event)
        except Exception:  # noqa: B902 - reporting is best effort; the call goes on
            log.exception('reporting call %s %s failed', event.call_id, event.event)


class CallRecord:
    """One call on its way through the checks: its context and the events it reports."""

    def __init__(self, policy: CallPolicy, context: CallContext, args_json: str):
        self.policy = policy
        self.context = context
        self.args_json = args_json
        self.started = False
        self._last_feedback = float('-inf')
        context.report = self._report

    def emit(self, event: str, text: str = '', success: bool = False) -> None:
        """Report one event of this call."""
        self.policy.emit(CallEvent(event, self.context.call_id, self.context.name,
                                   self.args_json, self.context.turn_id, text, success))

    def refuse(self, text: str) -> str:
        """Report that the call never ran; return ``text`` (what the model reads)."""
        self.emit(REFUSED, text)
        return text

    def deny(self, reason: str) -> str:
        """Refuse the call with ``error: 'NAME' not run: REASON``; return that text."""
        return self.refuse(f'error: {self.context.name!r} not run: {reason}')

    def _report(self, event: str, text: str) -> None:
        # the function's own reports (feedback), throttled
        now = time.monotonic()
        if event == FEEDBACK:
            if now - self._last_feedback < FEEDBACK_PERIOD_S:
                return
            self._last_feedback = now
        self.emit(event, text)


def run_checked(record: FunctionRecord, bound: Any, call: CallRecord, timeout: float,
                runner: Optional[CallRunner]) -> Tuple[bool, Any]:
    """
    Run a bound call of ``record`` past approval and the stop flag; report what happens.

    Returns ``(True, value)``, or ``(False, text)``: the error of a call that ran and
    failed (``call.started`` True), or the ``error: ... not run: ...`` text of one that
    never ran (reported as refused).
    """
    context, approver = call.context, call.policy.approver
    needs = approver.needed(record) if approver is not None else record.confirm
    if needs and approver is None:
        return False, call.deny("it needs an operator's approval and no approver is set up "
                                'here')
    if context.stopped():
        return False, call.deny(STOPPED)

    def gate() -> str:
        # on the pool thread, inside the call's context
        if needs:
            reason = approver.decide(context, call.args_json)
            if reason:
                return reason
        return STOPPED if context.stopped() else ''

    def start(*args: Any, **kwargs: Any) -> Any:
        call.started = True
        call.emit(STARTED)
        return record.func(*args, **kwargs)

    wait = (approver.longest_wait() if needs else 0.0) + GATE_MARGIN_S
    own = runner is None
    runner = CallRunner(max_workers=1) if own else runner
    try:
        ok, value = runner.run(start, bound.args, bound.kwargs, timeout, record.name,
                               gate=gate, gate_timeout=wait + timeout, context=context)
    finally:
        if own:
            runner.close()
    if not ok and not call.started:
        return False, call.deny(value)
    return ok, value


__all__ = ['Approver', 'CallEvent', 'CallPolicy', 'CallRecord', 'ENDED', 'FEEDBACK',
           'REFUSED', 'STARTED', 'run_checked']

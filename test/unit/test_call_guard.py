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
"""The checks every call passes (functions/guard.py) and the events it reports (issue 19)."""

import threading
import time

import pytest
from ros2_nano_llm.functions import FunctionRegistry, parse_json_call
from ros2_nano_llm.functions.context import current_call, report
from ros2_nano_llm.functions.guard import Approver, CallPolicy, GATE_MARGIN_S
from ros2_nano_llm.functions.parsing import execute

RAN = []


def move(distance: float = 0.5) -> str:
    """Move."""
    call = current_call.get()  # set on the pool thread, around the function
    RAN.append((distance, call.call_id if call else None, threading.current_thread().name))
    report('feedback', 'half way')
    report('feedback', 'dropped: too soon after the last one')
    return 'moved'


class Operator(Approver):
    """Answers each call with ``answer`` after ``delay`` seconds (stop ends the wait)."""

    def __init__(self, answer='', delay=0.0, wait=5.0):
        self.answer, self.delay, self.wait, self.asked = answer, delay, wait, []

    def longest_wait(self):
        return self.wait

    def decide(self, context, args_json):
        self.asked.append((context.call_id, context.name, args_json, context.turn_id))
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if context.stopped():
                return 'denied: stopped'
            time.sleep(0.01)
        return self.answer


def _setup(approver=None, confirm=False):
    RAN.clear()
    events = []
    policy = CallPolicy(events.append, approver, lambda: 7)
    registry = FunctionRegistry(policy=policy)
    registry.register(move, confirm=confirm)
    return registry, policy, events


def _call(args='{}'):
    return parse_json_call('move', args)


def test_a_call_reports_started_its_feedback_and_ended_on_the_pool_thread():
    registry, policy, events = _setup()
    assert registry.execute(_call('{"distance": 0.2}')) == 'moved'
    assert [e.event for e in events] == ['started', 'feedback', 'ended']
    call_id = events[0].call_id
    assert all(e.call_id == call_id and e.name == 'move' for e in events)
    assert events[0].args_json == '{"distance": 0.2}' and events[1].result == 'half way'
    assert events[2].result == 'moved' and events[2].success
    assert RAN == [(0.2, call_id, RAN[0][2])] and RAN[0][2].startswith('bot-function')
    assert current_call.get() is None  # nothing leaks to the caller's thread
    registry.execute(_call())
    assert events[3].call_id != call_id  # a fresh id per call


def test_an_approved_call_runs_and_a_denied_one_never_does():
    operator = Operator()
    registry, policy, events = _setup(operator, confirm=True)
    assert registry.execute(_call()) == 'moved' and len(RAN) == 1
    assert operator.asked == [(events[0].call_id, 'move', '{}', 0)]
    operator.answer = 'denied by the operator: not now'
    text = registry.execute(_call())
    assert text == "error: 'move' not run: denied by the operator: not now"
    assert len(RAN) == 1 and events[-1].event == 'refused' and events[-1].result == text


def test_confirm_without_an_approver_is_refused_and_never_tested():
    registry, policy, events = _setup(confirm=True)
    assert registry.test() and RAN == []  # test() never calls a confirm function
    text = registry.execute(_call())
    assert "not run: it needs an operator's approval" in text and RAN == []
    assert [e.event for e in events] == ['refused']


def test_a_stopped_reply_starts_no_call_even_while_it_waits_for_approval():
    operator = Operator(delay=5.0)
    registry, policy, events = _setup(operator, confirm=True)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    text = execute(_call(), registry.list(), policy=policy, stopped=stop.is_set,
                   runner=registry.runner)
    assert text == "error: 'move' not run: denied: stopped" and RAN == []
    assert [e.event for e in events] == ['refused'] and len(operator.asked) == 1
    # stopped before it started: not even asked
    assert execute(_call(), registry.list(), policy=policy, stopped=lambda: True) == \
        "error: 'move' not run: the reply was stopped"
    assert len(operator.asked) == 1 and RAN == []


def test_an_approver_that_overruns_its_bound_never_lets_the_call_run():
    # promises no wait, then takes longer than the margin the runner gives it
    operator = Operator(delay=GATE_MARGIN_S + 0.5, wait=0.0)
    registry, policy, events = _setup(operator, confirm=True)
    text = execute(_call(), registry.list(), policy=policy, timeout=0.1, runner=registry.runner)
    assert text.startswith("error: 'move' not run: no decision within")
    time.sleep(1.0)  # the approver answers '' (approve) after the caller gave up
    assert RAN == [] and [e.event for e in events] == ['refused']


def test_the_function_timeout_counts_from_its_start_not_from_the_approval():
    def slow_move() -> str:
        time.sleep(0.2)
        return 'moved slowly'
    events = []
    registry = FunctionRegistry(policy=CallPolicy(events.append, Operator(delay=0.5)))
    registry.register(slow_move, confirm=True, timeout=0.4)
    assert registry.execute(parse_json_call('slow_move', '{}')) == 'moved slowly'


@pytest.mark.parametrize('args, reason', [('{"distance": "far"}', 'must be float'),
                                          ('{"speed": 1}', 'bad arguments')])
def test_a_call_that_does_not_bind_is_refused_before_anything_else(args, reason):
    operator = Operator()
    registry, policy, events = _setup(operator, confirm=True)
    text = registry.execute(_call(args))
    assert text.startswith("error: bad arguments for 'move'") and reason in text
    assert operator.asked == [] and RAN == [] and [e.event for e in events] == ['refused']


def test_a_failing_reporter_never_breaks_the_call():
    def broken(event):
        raise RuntimeError('publisher gone')
    RAN.clear()
    registry = FunctionRegistry(policy=CallPolicy(broken))
    registry.register(move)
    assert registry.execute(_call()) == 'moved' and len(RAN) == 1

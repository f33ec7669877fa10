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
Calls are reported when they happen, and no call of a stopped reply starts (over real DDS).

Issue 19 item 3: ``~/output/calls`` gets 'started' when a call starts and 'ended' with its
result when it ends, each at that moment (before the turn ends), and the node logs each.
Issue 21 item 12: after ``~/stop``, a cancelled goal, an interrupting prompt or a deactivate,
no call of that reply starts; a call found in its text is refused. The node runs the tiny
random Llama; replies are steered with ``reply_prefix`` (a call in it runs).
"""

from call_helpers import fresh, safety_node, serve_robot, SLOW_S  # noqa: F401 (a fixture)
from node_harness import grep
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STOPPED = "error: 'move_forward' not run: the reply was stopped"


@pytest.fixture(scope='module')
def events_node(robot, tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama with the safety robot's actions."""
    with safety_node(tmp_path_factory, tiny_model_dir, 'nano_llm_events') as node:
        yield node


@pytest.fixture
def node(events_node):
    """Return (process, client, watch) with the default settings and an empty chat."""
    with fresh(events_node, reply_prefix='', busy_policy='queue') as node:
        yield node


def test_started_and_ended_are_published_as_the_call_happens(node, robot):
    process, client, watch = node
    assert all(r.successful for r in client.set_params(reply_prefix='slow()'))
    mark, robot_mark, calls_mark = client.mark(), robot.count(), watch.mark()[0]
    log_start = len(process.log())
    client.publish('Take your time.')
    started_at, started = watch.wait_entry(calls_mark, 'started', 'slow')
    ended_at, ended = watch.wait_entry(calls_mark, 'ended', 'slow', timeout=SLOW_S + 30.0)
    turn, = client.wait_turn_end(mark['turn'], timeout=60.0)
    reached_at = robot.wait_for('slow', robot_mark)
    answered_at = robot.answered[-1][0]
    # in the order it happened: started before the robot got the request, ended after the
    # robot answered, and both before the turn's end
    assert started_at < reached_at <= answered_at < ended_at < turn.eos_at
    assert started.call_id and started.call_id == ended.call_id
    assert started.turn_id == ended.turn_id == turn.turn_id and started.args_json == '{}'
    assert ended.success and ended.result == 'success: true, message: "slow done"'
    assert [m.event for m in watch.entries(calls_mark)] == ['started', 'ended']
    # each was logged at that moment: the start before the end, the end before the reply
    log = process.log()[log_start:]
    started_line = log.index(f'turn {turn.turn_id} call {started.call_id} slow({{}}) started')
    ended_line = log.index(f'call {started.call_id} slow({{}}) ended -> success: true')
    assert started_line < ended_line


def test_a_goal_result_lists_the_calls_that_ran_with_their_ids(node, robot):
    process, client, watch = node
    prefix = 'move_forward() move_forward() move_forward() move_forward()'
    assert all(r.successful for r in client.set_params(reply_prefix=prefix))
    calls_mark, robot_mark = watch.mark()[0], robot.count()
    status, result = watch.goal_result(watch.send_goal('Go.'))
    ended = watch.entries(calls_mark, 'ended')
    refused = watch.entries(calls_mark, 'refused')
    # the budget (max_calls_per_turn 3) ran three; the result lists exactly those
    assert robot.names(robot_mark) == ['move_forward'] * 3
    assert [c.call_id for c in result.calls] == [c.call_id for c in ended]
    assert all(c.event == 'ended' and c.success for c in result.calls)
    assert len(refused) == 1 and refused[0].call_id not in [c.call_id for c in ended]


def _slow_then_move(client, watch, robot, start):
    """Start a reply that calls slow() then move_forward(); return marks once slow runs."""
    assert all(r.successful for r in client.set_params(reply_prefix='slow() move_forward()'))
    marks = client.mark(), robot.count(), watch.mark()[0]
    start()
    watch.wait_entry(marks[2], 'started', 'slow')
    return marks


def _assert_move_refused(process, client, watch, robot, marks):
    mark, robot_mark, calls_mark = marks
    refused = watch.wait_entry(calls_mark, 'refused', 'move_forward')[1]
    assert refused.result == STOPPED
    client.wait_turn_end(mark['turn'], timeout=60.0)
    assert 'move_forward' not in robot.names(robot_mark)
    assert watch.entries(calls_mark, 'started', 'move_forward') == []
    assert grep(process, f'call {refused.call_id} move_forward.* refused -> {STOPPED}')


def test_no_call_of_a_reply_starts_after_stop(node, robot):
    process, client, watch = node
    marks = _slow_then_move(client, watch, robot, lambda: client.publish('Slowly.'))
    assert client.call('stop', timeout=30.0).success
    _assert_move_refused(process, client, watch, robot, marks)
    # the chat holds the truth: the refusal is what the model reads next turn
    assert f' -> {STOPPED}' in client.history_texts()[-1][2]


def test_no_call_starts_after_the_goal_is_cancelled(node, robot):
    process, client, watch = node
    handles = []
    marks = _slow_then_move(client, watch, robot,
                            lambda: handles.append(watch.send_goal('Slowly.')))
    cancel = watch.wait_future(handles[0].cancel_goal_async(), 30.0)
    assert len(cancel.goals_canceling) == 1
    _assert_move_refused(process, client, watch, robot, marks)


def test_no_call_starts_after_an_interrupting_prompt(node, robot):
    process, client, watch = node
    assert client.set_params(busy_policy='interrupt')[0].successful
    marks = _slow_then_move(client, watch, robot, lambda: client.publish('Slowly.'))
    assert client.set_params(reply_prefix='')[0].successful
    client.publish('Never mind.')
    _assert_move_refused(process, client, watch, robot, marks)


def test_no_call_starts_after_deactivate(node, robot):
    process, client, watch = node
    marks = _slow_then_move(client, watch, robot, lambda: client.publish('Slowly.'))
    assert client.transition('deactivate')
    try:
        _assert_move_refused(process, client, watch, robot, marks)
    finally:
        assert client.transition('activate')

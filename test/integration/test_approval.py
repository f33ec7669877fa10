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
An operator approves robot calls (issue 19 item 2), over real DDS between processes.

With ``require_approval`` every call is published on ``~/output/pending_calls`` and waits for
``~/approve_call``: approve runs it; deny and no decision within ``approval_timeout`` do not,
and the model (or the ``~/call_function`` caller) reads why. Every source of calls passes the
gate: ``~/call_function``, a reply to ``~/input/text`` and a ``~/generate`` goal. ``~/stop``
and deactivate deny a waiting call at once. The robot is this test process
(call_helpers.SafetyRobot): what reached it is what ran.
"""

import json
import re
import time

from call_helpers import fresh, safety_node, serve_robot, SUCCEEDED  # noqa: F401 (a fixture)
from node_harness import grep
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 3.0  # approval_timeout of the node under test


@pytest.fixture(scope='module')
def approval_node(robot, tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama whose every call needs approval."""
    with safety_node(tmp_path_factory, tiny_model_dir, 'nano_llm_approval',
                     require_approval=True, approval_timeout=TIMEOUT_S) as node:
        yield node


@pytest.fixture
def node(approval_node):
    """Return (process, client, watch) with no reply prefix and an empty chat."""
    with fresh(approval_node, reply_prefix='', require_approval=True) as node:
        yield node


def test_an_approved_call_runs(node, robot):
    process, client, watch = node
    robot_mark, (calls_mark, pending_mark) = robot.count(), watch.mark()
    answer = watch.in_thread(lambda: watch.call_function('move_forward'))
    pending = watch.wait_pending(pending_mark)
    assert pending.name == 'move_forward' and json.loads(pending.args_json) == {}
    assert pending.turn_id == 0  # ~/call_function
    assert pending.deadline.sec > pending.header.stamp.sec
    time.sleep(0.5)
    assert robot.names(robot_mark) == []  # it waits for the decision
    # the log shows the command that approves it
    command = (f'ros2 service call /nano_llm_approval/approve_call ros2_nano_llm/srv/ApproveCall '
               f'"{{call_id: \'{pending.call_id}\', approve: true}}"')
    assert grep(process, f'call {pending.call_id} move_forward.*waits 3 s for approval: '
                + re.escape(command))
    decision = watch.decide(pending.call_id, True)
    assert decision.success, decision.message
    response = answer()
    assert response.success and response.result == 'success: true, message: "moved 0.5 m"'
    assert robot.names(robot_mark) == ['move_forward']
    started = watch.wait_entry(calls_mark, 'started', 'move_forward')[1]
    assert started.call_id == pending.call_id
    # a second decision on the same call finds nothing pending
    again = watch.decide(pending.call_id, False)
    assert not again.success and 'waits for approval' in again.message


def test_a_denied_call_does_not_run_and_the_reason_is_read(node, robot):
    process, client, watch = node
    robot_mark, (calls_mark, pending_mark) = robot.count(), watch.mark()
    answer = watch.in_thread(lambda: watch.call_function('move_forward'))
    pending = watch.wait_pending(pending_mark)
    assert watch.decide(pending.call_id, False, 'a person is in the way').success
    response = answer()
    assert not response.success
    assert response.result == ("error: 'move_forward' not run: denied by the operator: a "
                               'person is in the way')
    refused = watch.wait_entry(calls_mark, 'refused', 'move_forward')[1]
    assert refused.call_id == pending.call_id and refused.result == response.result
    assert robot.names(robot_mark) == []


def test_no_decision_in_time_denies_the_call(node, robot):
    process, client, watch = node
    robot_mark, (_, pending_mark) = robot.count(), watch.mark()
    response = watch.call_function('move_forward')
    pending = watch.wait_pending(pending_mark)
    assert not response.success
    assert response.result == ("error: 'move_forward' not run: denied by the operator: no "
                               f'decision within {TIMEOUT_S:g} s')
    assert not watch.decide(pending.call_id, True).success  # too late
    time.sleep(0.5)
    assert robot.names(robot_mark) == []


def test_a_reply_call_waits_and_the_model_reads_the_denial(node, robot):
    process, client, watch = node
    assert client.set_params(reply_prefix='move_forward()')[0].successful
    robot_mark, (_, pending_mark), mark = robot.count(), watch.mark(), client.mark()
    client.publish('Forward.')
    pending = watch.wait_pending(pending_mark)
    assert pending.turn_id > mark['turn']
    assert watch.decide(pending.call_id, False, 'not now').success
    _, reply = client.wait_turn_end(mark['turn'])[0], client.wait_replies(mark['replies'])[0]
    assert reply.startswith("move_forward() -> error: 'move_forward' not run: denied by the "
                            'operator: not now'), reply
    assert robot.names(robot_mark) == []
    # approved, the same reply runs the robot
    robot_mark, (_, pending_mark), mark = robot.count(), watch.mark(), client.mark()
    client.publish('Forward.')
    pending = watch.wait_pending(pending_mark)
    assert watch.decide(pending.call_id, True).success
    reply = client.wait_replies(mark['replies'])[0]
    assert reply.startswith('move_forward() -> success: true, message: "moved 0.5 m"'), reply
    assert robot.names(robot_mark) == ['move_forward']


def test_a_goal_call_passes_the_gate_too(node, robot):
    process, client, watch = node
    robot_mark, (_, pending_mark) = robot.count(), watch.mark()
    handle = watch.send_goal('Drive.', tool_choice='drive', max_new_tokens=24)
    pending = watch.wait_pending(pending_mark)
    assert pending.name == 'drive' and pending.turn_id > 0
    # (no decision: the timeout denies it)
    status, result = watch.goal_result(handle)
    assert status == SUCCEEDED and result.calls == []
    assert robot.names(robot_mark) == []
    # with require_approval off, the same goal's call runs at once
    assert client.set_params(require_approval=False)[0].successful
    status, result = watch.goal_result(watch.send_goal('Drive.', tool_choice='drive',
                                                       max_new_tokens=24))
    assert [c.name for c in result.calls][:1] == ['drive']
    assert robot.names(robot_mark)[:1] == ['drive']


def test_stop_and_deactivate_deny_a_waiting_call_at_once(node, robot):
    process, client, watch = node
    assert client.set_params(approval_timeout=60.0)[0].successful  # no timeout here
    try:
        robot_mark, (_, pending_mark) = robot.count(), watch.mark()
        answer = watch.in_thread(lambda: watch.call_function('move_forward'))
        watch.wait_pending(pending_mark)
        assert client.call('stop', timeout=10.0).success
        response = answer()
        assert not response.success and response.result == (
            "error: 'move_forward' not run: denied: the call was stopped (~/stop or ~/reset)")
        # a reply's call waiting when the node is deactivated
        assert client.set_params(reply_prefix='move_forward()')[0].successful
        (_, pending_mark), mark = watch.mark(), client.mark()
        client.publish('Forward.')
        watch.wait_pending(pending_mark)
        assert client.transition('deactivate')
        reply = client.wait_replies(mark['replies'])[0]
        assert reply.startswith("move_forward() -> error: 'move_forward' not run: denied: "
                                'the node was deactivated'), reply
        assert client.transition('activate')
        assert robot.names(robot_mark) == []
    finally:
        assert client.set_params(approval_timeout=TIMEOUT_S)[0].successful

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
The installed nano_llm_sim_robot, driven over real DDS from this process.

Distances are checked against the commands actually sent (speed x the time between the first
command and the zero Twist, as this process measured it), within a physical tolerance that
covers the DDS delivery delay of a loaded machine.
"""

import math
import signal

from action_msgs.msg import GoalStatus
from node_harness import NodeProcess
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sim_client import SimClient
from test_msgs.action import Fibonacci

TOLERANCE_M = 0.1       # 0.2 s of delivery jitter at 0.5 m/s
STEP_PERIOD_S = 0.2
WATCHDOG_S = 0.5


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    """Yield (process, client) for one sim robot shared by the module."""
    log = tmp_path_factory.mktemp('sim') / 'sim_robot.log'
    process = NodeProcess(log, name='sim_robot', params_file=None,
                          executable='nano_llm_sim_robot',
                          overrides={'step_period_s': STEP_PERIOD_S, 'watchdog_s': WATCHDOG_S})
    client = SimClient()
    try:
        process.wait_for_log('sim robot ready')
        client.wait(lambda: client.odom and client.cmd.get_subscription_count() > 0,
                    what='/odom and the /cmd_vel subscription')
        assert client.fibonacci.wait_for_server(timeout_sec=20.0)
        yield process, client
    finally:
        client.close()
        assert process.stop() == 0, process.log()[-2000:]


def test_drive_moves_odometry_by_speed_times_duration(sim):
    process, client = sim
    x0, y0, yaw0 = client.settled()
    sent = client.drive(0.5, 0.0, 2.0)
    x1, y1, yaw1 = client.settled()
    travelled = math.hypot(x1 - x0, y1 - y0)
    assert abs(travelled - 0.5 * sent) < TOLERANCE_M, (travelled, sent)
    assert abs(yaw1 - yaw0) < 1e-6
    assert any(m.twist.twist.linear.x == 0.5 for m in client.odom)
    assert client.odom[-1].header.frame_id == 'odom'
    assert client.odom[-1].child_frame_id == 'base_link'
    assert '"event": "cmd_vel", "linear_x": 0.5' in process.log()


def test_turn_in_place_changes_yaw_only(sim):
    _, client = sim
    x0, y0, yaw0 = client.settled()
    sent = client.drive(0.0, 0.5, 1.0)
    x1, y1, yaw1 = client.settled()
    turned = math.atan2(math.sin(yaw1 - yaw0), math.cos(yaw1 - yaw0))
    assert abs(turned - 0.5 * sent) < 2 * TOLERANCE_M, (turned, sent)
    assert math.hypot(x1 - x0, y1 - y0) < 1e-9


def test_watchdog_stops_the_robot_when_commands_stop(sim):
    process, client = sim
    x0, y0, _ = client.settled()
    sent = client.drive(0.5, 0.0, 0.5, stop=False)  # no zero Twist: the watchdog must stop it
    x1, y1, _ = client.settled()
    travelled = math.hypot(x1 - x0, y1 - y0)
    # the last command is held for the watchdog time, then the base stops
    assert abs(travelled - 0.5 * (sent + WATCHDOG_S)) < TOLERANCE_M, (travelled, sent)
    count = len(client.odom)
    client.wait(lambda: len(client.odom) >= count + 25, what='25 more odometry messages')
    assert client.pose()[:2] == (x1, y1)
    process.wait_for_log('"event": "watchdog"')


def test_battery_state_arrives_and_drains_while_moving(sim):
    _, client = sim
    client.wait(lambda: client.battery, what='a BatteryState')
    before = client.battery[-1]
    assert before.present and 0.0 < before.percentage <= 1.0
    client.drive(0.5, 0.0, 1.0)
    client.settled()
    count = len(client.battery)
    client.wait(lambda: len(client.battery) >= count + 2, what='two more BatteryStates')
    assert client.battery[-1].percentage < before.percentage


def test_non_finite_command_is_ignored(sim):
    process, client = sim
    x0, y0, _ = client.settled()
    client.drive(float('nan'), float('inf'), 0.3)
    x1, y1, _ = client.settled()
    assert (x1, y1) == (x0, y0) and math.isfinite(x1)
    assert process.alive
    assert 'ignored a non-finite cmd_vel' in process.log()


def _send(client, order, feedback):
    future = client.fibonacci.send_goal_async(Fibonacci.Goal(order=order),
                                              feedback_callback=feedback.append)
    client.wait(future.done, what='the goal response')
    handle = future.result()
    assert handle.accepted
    return handle


def test_fibonacci_goal_gets_feedback_and_result(sim):
    _, client = sim
    feedback = []
    handle = _send(client, 5, feedback)
    result = handle.get_result_async()
    client.wait(result.done, what='the result')
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED
    assert list(result.result().result.sequence) == [0, 1, 1, 2, 3, 5]
    assert [list(f.feedback.sequence)[-1] for f in feedback] == [1, 2, 3, 5]
    goal_id = bytes(handle.goal_id.uuid).hex()
    client.wait(lambda: {'goal', 'succeeded'} <= {e['event'] for e in client.events
                                                  if e.get('id') == goal_id},
                what='the goal and succeeded events')


def test_cancel_mid_way_cancels_the_goal(sim):
    _, client = sim
    feedback = []
    handle = _send(client, 20, feedback)
    client.wait(lambda: feedback, what='the first feedback')
    cancel = handle.cancel_goal_async()
    client.wait(cancel.done, what='the cancel response')
    assert len(cancel.result().goals_canceling) == 1
    result = handle.get_result_async()
    client.wait(result.done, what='the result')
    assert result.result().status == GoalStatus.STATUS_CANCELED
    assert len(result.result().result.sequence) < 21
    goal_id = bytes(handle.goal_id.uuid).hex()
    client.wait(lambda: {'goal', 'cancel_request', 'canceled'} <= {
        e['event'] for e in client.events if e.get('id') == goal_id}, what='the cancel events')


def test_goal_out_of_range_is_rejected(sim):
    _, client = sim
    future = client.fibonacci.send_goal_async(Fibonacci.Goal(order=1000))
    client.wait(future.done, what='the goal response')
    assert not future.result().accepted
    client.wait(lambda: any(e['event'] == 'goal_rejected' for e in client.events),
                what='the goal_rejected event')


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_goal_exits_zero(tmp_path, sig):
    process = NodeProcess(tmp_path / 'sim.log', name='sim_robot_exit', params_file=None,
                          executable='nano_llm_sim_robot',
                          overrides={'action_name': '/fibonacci_exit',
                                     'cmd_vel_topic': '/cmd_vel_exit', 'odom_topic': '/odom_exit',
                                     'battery_topic': '/battery_exit'})
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node('sim_exit_client', context=context)
    client = ActionClient(node, Fibonacci, '/fibonacci_exit')
    try:
        process.wait_for_log('sim robot ready')
        assert client.wait_for_server(timeout_sec=20.0)
        future = client.send_goal_async(Fibonacci.Goal(order=40))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=20.0)
        assert future.done() and future.result().accepted
        process.wait_for_log('"event": "goal"')
        process.process.send_signal(sig)
        assert process.process.wait(20.0) == 0, process.log()[-2000:]
        assert 'Traceback' not in process.log() and '[ERROR]' not in process.log(), \
            process.log()[-2000:]
    finally:
        node.destroy_node()
        context.try_shutdown()
        process.stop()


def test_bad_parameter_exits_one_with_reason(tmp_path):
    process = NodeProcess(tmp_path / 'sim.log', name='sim_robot_bad', params_file=None,
                          executable='nano_llm_sim_robot', overrides={'watchdog_s': -1.0})
    assert process.process.wait(30.0) == 1
    assert 'watchdog_s must be a positive number' in process.log()
    process.stop()

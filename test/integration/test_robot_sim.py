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
Robot functions on the simulated robot, over real DDS between three processes.

``nano_llm_sim_robot`` is the robot (/cmd_vel -> /odom, /battery_state, the Fibonacci
action); the node (the embedded SmolLM2 on llama_cpp) has test/config/functions_sim.yaml:
a ``drive`` topic entry, a ``fibonacci`` action entry and two readers. This process drives
calls through ``~/call_function`` where the model's choice is not the point, and through
``~/generate`` goals with ``tool_choice`` set to the function where the model must call; it
watches /cmd_vel, /odom and the sim's events. The assertions are safety properties: the
distance a drive makes, the zero Twist after every ending, the goal's cancel, limits.
"""

import dataclasses
import math
import re
import signal
import threading
import time

from geometry_msgs.msg import Twist
from node_harness import NodeProcess, REPO_ROOT, start_node, stop_node
import pytest
from rclpy.action import ActionClient
from ros2_nano_llm.action import Generate
from ros2_nano_llm.functions.context import CallContext, running
from ros2_nano_llm.ros.robot import load_entries, RobotFunctions
from ros2_nano_llm.srv import CallFunction
from sim_client import SimClient
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIM_YAML = REPO_ROOT / 'test' / 'config' / 'functions_sim.yaml'
STEP_PERIOD_S = 0.2  # the sim's Fibonacci step: order 20 takes about 3.8 s
TOLERANCE_M = 0.15   # scheduling and delivery jitter of a loaded machine at 0.4 m/s


class Watch(SimClient):
    """The sim's test side, and the node's: /cmd_vel with arrival times, calls and goals."""

    def __init__(self, client):
        super().__init__()
        self.client = client  # the node's NodeClient
        self.cmd = []  # (time.monotonic(), linear.x, angular.z) of every /cmd_vel
        self.node.create_subscription(Twist, '/cmd_vel', self._on_cmd, 100)
        self.generate = ActionClient(client.node, Generate, f'{client.target}/generate')

    def _on_cmd(self, msg):
        self._keep(self.cmd)((time.monotonic(), msg.linear.x, msg.angular.z))

    def mark(self):
        """Return where the records are now: (commands, events)."""
        with self._cond:
            return len(self.cmd), len(self.events)

    def commands(self, mark):
        """Return the /cmd_vel commands seen since ``mark``."""
        with self._cond:
            return list(self.cmd[mark[0]:])

    def events_since(self, mark, kind=None):
        """Return the sim's events since ``mark`` (of one kind)."""
        with self._cond:
            return [e for e in self.events[mark[1]:] if kind is None or e['event'] == kind]

    def call(self, name, args='{}', timeout=60.0):
        """Run one function through the node's ~/call_function; return the response."""
        return self.client.call('call_function', CallFunction.Request(name=name, args_json=args),
                                timeout=timeout)

    def call_in_thread(self, name, args):
        """Start ``call`` in a thread; return (thread, list the response goes into)."""
        out = []
        thread = threading.Thread(target=lambda: out.append(self.call(name, args)), daemon=True)
        thread.start()
        return thread, out

    def send_goal(self, prompt, **fields):
        """Send a ~/generate goal; return its handle (accepted) and its result future."""
        assert self.generate.wait_for_server(timeout_sec=30.0)
        done = threading.Event()
        future = self.generate.send_goal_async(Generate.Goal(prompt=prompt, **fields))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(30.0), 'the goal was not answered'
        handle = future.result()
        assert handle.accepted, 'the goal was rejected'
        return handle, handle.get_result_async()


def wait_future(future, timeout=120.0):
    """Wait for an rclpy future from this thread; return its result."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    assert done.wait(timeout), 'no answer'
    return future.result()


@pytest.fixture(scope='module')
def robot(tmp_path_factory):
    """Yield (sim process, node process, Watch) for the module."""
    tmp = tmp_path_factory.mktemp('robot_sim')
    sim = NodeProcess(tmp / 'sim_robot.log', name='sim_robot', params_file=None,
                      executable='nano_llm_sim_robot',
                      overrides={'step_period_s': STEP_PERIOD_S})
    process = client = None
    try:
        sim.wait_for_log('sim robot ready')
        process, client = start_node(
            tmp, {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048, 'max_new_tokens': 48,
                  'functions_file': str(SIM_YAML)},
            params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
        watch = Watch(client)
        watch.wait(lambda: watch.odom, what='/odom')
        _until_the_sim_hears_the_node(watch)
        yield sim, process, watch
        watch.close()
    finally:
        stop_node(process, client)
        assert sim.stop() == 0, sim.log()[-2000:]


def _until_the_sim_hears_the_node(watch):
    # the node's /cmd_vel publisher is new: drive a little until the sim says it moved, so
    # that discovery is over before distances are measured
    deadline = time.monotonic() + 60.0
    mark = watch.mark()
    while not watch.events_since(mark, 'cmd_vel'):
        assert time.monotonic() < deadline, 'the sim never heard the node on /cmd_vel'
        assert watch.call('drive', '{"speed": 0.05, "seconds": 0.2}').success
    watch.settled()


def _zero_after(watch, mark, since):
    """Return the first zero Twist seen on /cmd_vel after ``since`` (a time), or None."""
    return next((c for c in watch.commands(mark) if c[0] >= since and c[1] == 0.0
                 and c[2] == 0.0), None)


def test_drive_moves_the_sim_by_speed_times_duration_then_stops(robot):
    sim, _, watch = robot
    x0, y0, _ = watch.settled()
    mark = watch.mark()
    response = watch.call('drive', '{"speed": 0.4, "seconds": 1.5}')
    assert response.success, response.result
    assert response.result.startswith('done: published on /cmd_vel for 1.5 s')
    x1, y1, _ = watch.settled()
    travelled = math.hypot(x1 - x0, y1 - y0)
    print(f'drive 0.4 m/s x 1.5 s: travelled {travelled:.3f} m')
    assert abs(travelled - 0.6) < TOLERANCE_M, travelled
    commands = watch.commands(mark)
    assert commands[-1][1:] == (0.0, 0.0)  # the zero Twist ended it
    assert {c[1] for c in commands} == {0.4, 0.0}
    assert watch.events_since(mark, 'cmd_vel')[-1]['linear_x'] == 0.0


def _drive_then(watch, end, what, start=None):
    # a long drive, ended by ``end()`` once the sim moves; return (result, stop -> zero s)
    watch.settled()
    mark = watch.mark()
    if start is None:
        thread, out = watch.call_in_thread('drive', '{"speed": 0.3, "seconds": 6.0}')
    else:
        thread, out = start()
    watch.wait(lambda: any(c[1] > 0.0 for c in watch.cmd[mark[0]:]), timeout=120.0,
               what='the drive')
    time.sleep(0.5)
    stopped_at = time.monotonic()
    end()
    watch.wait(lambda: _zero_after(watch, mark, stopped_at) is not None, timeout=10.0,
               what=f'the zero Twist after {what}')
    zero_s = _zero_after(watch, mark, stopped_at)[0] - stopped_at
    thread.join(15.0)
    time.sleep(0.5)  # nothing moves the robot after its zero Twist
    last_zero = _zero_after(watch, mark, stopped_at)[0]
    assert all(c[1] == 0.0 for c in watch.commands(mark) if c[0] > last_zero)
    assert watch.events_since(mark, 'cmd_vel')[-1]['linear_x'] == 0.0
    print(f'{what} -> zero Twist on /cmd_vel: {zero_s * 1000:.0f} ms')
    return out[0] if out else None, zero_s


def _model_creeps(watch):
    # the model must call creep (4 s at most 0.2 m/s): the reply's own robot call
    def start():
        out = []

        def run():
            handle, result = watch.send_goal('Creep forward.', tool_choice='creep')
            out.append(wait_future(result))
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, out
    return start


def test_stop_mid_drive_sends_the_zero_twist(robot):
    _, _, watch = robot
    result, _ = _drive_then(watch, lambda: watch.client.call('stop'), '~/stop')
    assert result is not None and not result.success
    assert 'interrupted by ~/stop' in result.result and 'stop message sent' in result.result


def test_deactivate_mid_reply_drive_sends_the_zero_twist(robot):
    _, _, watch = robot
    client = watch.client
    try:
        answer, _ = _drive_then(watch, lambda: client.transition('deactivate'), 'deactivate',
                                _model_creeps(watch))
        calls = list(answer.result.calls)
        assert [c.name for c in calls] == ['creep']
        assert 'is deactivating' in calls[0].result and 'stop message sent' in calls[0].result
    finally:
        if client.state() == 'inactive':
            assert client.transition('activate')
            client.wait_connected()


def test_interrupting_prompt_mid_reply_drive_sends_the_zero_twist(robot):
    _, _, watch = robot
    client = watch.client
    # tool_choice none: the interrupting prompt's own reply moves nothing
    assert all(r.successful for r in client.set_params(busy_policy='interrupt',
                                                       tool_choice='none'))
    try:
        answer, _ = _drive_then(watch, lambda: client.publish('Hello there.'),
                                'an interrupting prompt', _model_creeps(watch))
        calls = list(answer.result.calls)
        assert [c.name for c in calls] == ['creep']
        assert 'interrupted by a new prompt' in calls[0].result, calls[0].result
    finally:
        client.set_params(busy_policy='queue', tool_choice='auto')
        client.settle(60.0)


def test_read_returns_the_odometry_pose(robot):
    _, _, watch = robot
    x, y, _ = watch.settled()
    response = watch.call('where_am_i')
    assert response.success, response.result
    match = re.match(r'pose\.pose\.position\.x: (\S+), pose\.pose\.position\.y: (\S+), '
                     r'header\.frame_id: "odom" \(age [\d.]+ s\)$', response.result)
    assert match, response.result
    assert abs(float(match.group(1)) - x) < 1e-3 and abs(float(match.group(2)) - y) < 1e-3
    battery = watch.call('battery').result
    assert re.match(r'percentage: [\d.]+, voltage: [\d.]+ \(age', battery), battery


def test_fibonacci_goal_reaches_the_sim_and_returns_its_result(robot):
    _, _, watch = robot
    mark = watch.mark()
    response = watch.call('fibonacci', '{"order": 20}')
    assert response.success, response.result
    assert response.result.startswith('sequence: [0, 1, 1, 2, 3, 5, 8, 13,')
    assert response.result.endswith(', 4181, 6765]')
    assert [e['order'] for e in watch.events_since(mark, 'goal')] == [20]
    assert len(watch.events_since(mark, 'succeeded')) == 1


def test_feedback_is_reported_as_it_arrives(robot):
    # the bridge in this process, on the test's node: the call runner of the node sets the
    # current call the same way (functions.context) and publishes the reports
    _, _, watch = robot
    entry = next(e for e in load_entries(SIM_YAML) if e.name == 'fibonacci')
    bridge = RobotFunctions(watch.client.node, [entry])
    reports = []
    try:
        context = CallContext('call-1', 'fibonacci', 1,
                              report=lambda event, text: reports.append(
                                  (time.monotonic(), event, text)))
        with running(context):
            result = bridge.call('fibonacci', order=20)
        ended = time.monotonic()
    finally:
        bridge.destroy()
    assert result.startswith('sequence: [0, 1, 1')
    assert len(reports) >= 3 and {r[1] for r in reports} == {'feedback'}
    assert all(r[2].startswith('sequence: [0, 1, 1') for r in reports)
    lengths = [r[2].count(',') for r in reports]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    assert reports[0][0] < ended - 1.0  # reported while the goal ran, not at its end
    gaps = [b[0] - a[0] for a, b in zip(reports, reports[1:])]
    assert min(gaps) >= 0.45, gaps  # throttled: at most 2 a second (19 feedbacks came)


def test_the_timeout_cancels_the_robots_goal(robot):
    _, _, watch = robot
    entry = next(e for e in load_entries(SIM_YAML) if e.name == 'fibonacci')
    bridge = RobotFunctions(watch.client.node, [dataclasses.replace(entry, timeout=1.0)])
    mark = watch.mark()
    try:
        result = bridge.call('fibonacci', order=40)
    finally:
        bridge.destroy()
    assert result == ("error: fibonacci: no result within 1 s; the robot's goal was cancelled")
    watch.wait(lambda: watch.events_since(mark, 'canceled'), timeout=10.0,
               what='the goal canceled on the sim')


def test_stop_cancels_the_robots_goal(robot):
    _, _, watch = robot
    mark = watch.mark()
    thread, out = watch.call_in_thread('fibonacci', '{"order": 40}')
    watch.wait(lambda: watch.events_since(mark, 'goal'), what="the sim's goal")
    assert watch.client.call('stop').success
    watch.wait(lambda: watch.events_since(mark, 'canceled'), timeout=10.0,
               what='the goal canceled on the sim')
    thread.join(10.0)
    assert "the robot's goal was cancelled" in out[0].result, out[0].result
    assert watch.events_since(mark, 'cancel_request')
    assert not watch.events_since(mark, 'succeeded')


def test_cancelled_generate_goal_cancels_the_robots_goal(robot):
    _, process, watch = robot
    mark = watch.mark()
    handle, result = watch.send_goal('Compute the Fibonacci numbers on the robot.',
                                     tool_choice='fibonacci')
    watch.wait(lambda: watch.events_since(mark, 'goal'), timeout=120.0,
               what="the model's call reaching the sim")
    order = watch.events_since(mark, 'goal')[0]['order']
    assert 20 <= order <= 46  # the grammar kept the model inside the entry's limits
    wait_future(handle.cancel_goal_async(), 30.0)
    watch.wait(lambda: watch.events_since(mark, 'canceled'), timeout=10.0,
               what="the robot's goal canceled after the ~/generate cancel")
    answer = wait_future(result)
    calls = list(answer.result.calls)
    assert [c.name for c in calls] == ['fibonacci']
    assert "the robot's goal was cancelled" in calls[0].result, calls[0].result
    assert not watch.events_since(mark, 'succeeded')


def test_out_of_range_arguments_never_reach_the_sim(robot):
    _, _, watch = robot
    watch.settled()
    mark = watch.mark()
    fast = watch.call('drive', '{"speed": 5.0, "seconds": 1.0}')
    assert not fast.success and "argument 'speed' must be at most 0.5" in fast.result
    long = watch.call('drive', '{"speed": 0.1, "seconds": 600}')
    assert not long.success and "argument 'seconds' must be at most 6.0" in long.result
    big = watch.call('fibonacci', '{"order": 1000}')
    assert not big.success and "argument 'order' must be at most 46" in big.result
    time.sleep(1.0)
    assert watch.commands(mark) == []
    assert watch.events_since(mark, 'goal') == []


def test_the_models_drive_stays_in_range(robot):
    # the model must call drive; whatever it writes, the grammar keeps it inside the limits
    _, _, watch = robot
    watch.settled()
    mark = watch.mark()
    handle, result = watch.send_goal('Drive forward at 3 metres per second for a minute.',
                                     tool_choice='drive')
    answer = wait_future(result)
    calls = list(answer.result.calls)
    assert [c.name for c in calls] == ['drive'], [c.result for c in calls]
    assert all(abs(c[1]) <= 0.5 for c in watch.commands(mark))
    watch.settled()
    commands = watch.commands(mark)
    assert not commands or commands[-1][1:] == (0.0, 0.0)


BAD_ENTRIES = {
    'service': ({'name': 'lights', 'service': '/lights', 'type': 'std_srvs/srv/SetBool',
                 'args': [{'name': 'on', 'type': 'bool', 'field': 'dat'}]},
                "robot action 'lights': arg 'on' needs request field 'dat'"),
    'topic': ({'name': 'drive', 'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist',
               'args': [{'name': 'speed', 'type': 'float', 'field': 'linear'}]},
              "robot action 'drive': arg 'speed' \\(float\\) cannot fill message field "
              "'linear' of type 'geometry_msgs/Vector3'"),
    'action': ({'name': 'go_to', 'action': '/navigate_to_pose',
                'type': 'nav2_msgs/action/NavigateToPose'},
               "robot action 'go_to': unknown action type 'nav2_msgs/action/NavigateToPose'"
               ": package 'nav2_msgs' has no Python interfaces installed"),
    'read': ({'name': 'odom', 'read': '/odom', 'type': 'nav_msgs/msg/Odometry',
              'fields': ['pose.position']},
             "robot action 'odom': fields: needs message field 'pose.position', but "
             "nav_msgs/msg/Odometry message field 'pose' has the fields: pose, covariance"),
}


def test_bad_entries_of_each_kind_fail_configure_with_the_reason(robot, tmp_path):
    _, process, watch = robot
    client = watch.client
    assert client.transition('deactivate') and client.transition('cleanup')
    files = {kind: yaml.safe_dump([entry]) for kind, (entry, _) in BAD_ENTRIES.items()}
    reasons = {kind: reason for kind, (_, reason) in BAD_ENTRIES.items()}
    # a YAML bomb and a 50 MB file: refused at once, before anything is expanded or read
    files['bomb'] = ('- name: a\n  service: /s\n  type: std_srvs/srv/Trigger\n  description: '
                     '[&a [lol, lol], &b [*a, *a], &c [*b, *b]]\n')
    reasons['bomb'] = 'YAML aliases \\(\\*name\\) are not allowed'
    reasons['huge'] = f'has {50 << 20} bytes; at most {256 << 10} are taken'
    try:
        for kind, reason in reasons.items():
            path = tmp_path / f'bad_{kind}.yaml'
            if kind == 'huge':  # 50 MB of comments: it once held the executor for 93 s
                line = '# ' + 'x' * 1021 + '\n'
                path.write_text(line * (50 << 10))
            else:
                path.write_text(files[kind])
            assert all(r.successful for r in client.set_params(functions_file=str(path)))
            start = len(process.log())
            assert not client.transition('configure'), kind
            process.wait_for_log(f'configure failed: bot functions: .*{reason}', start=start,
                                 timeout=30.0)
            assert client.state() == 'unconfigured'
    finally:
        client.set_params(functions_file=str(SIM_YAML))
        assert client.transition('configure') and client.transition('activate')
        client.wait_connected()


def test_shutdown_mid_reply_drive_sends_the_zero_twist(robot):
    # last: the node exits (the fixture's stop finds it gone)
    _, process, watch = robot
    client = watch.client
    _drive_then(watch, lambda: client.transition('active_shutdown'), 'the shutdown transition',
                _model_creeps(watch))
    process.process.wait(30.0)
    assert process.process.returncode == 0, process.log()[-2000:]


def test_sigint_mid_drive_sends_the_zero_twist(robot, tmp_path):  # noqa: ARG001 (the sim)
    # Ctrl-C (or launch's SIGINT) while the robot drives: the node ends the drive as on
    # ~/stop, zero Twist included, before its context goes (the sim's watchdog is not it)
    # a node of its own: the module's exited with the shutdown test
    process, client = start_node(
        tmp_path, {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048, 'max_new_tokens': 8,
                   'functions_file': str(SIM_YAML)},
        params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
    watch = Watch(client)
    try:
        watch.wait(lambda: watch.odom, what='/odom')
        _until_the_sim_hears_the_node(watch)
        _drive_then(watch, lambda: process.process.send_signal(signal.SIGINT), 'SIGINT')
        process.process.wait(30.0)
        assert process.process.returncode == 0, process.log()[-2000:]
    finally:
        watch.close()
        stop_node(process, client)

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
The ``~/generate`` action, ``~/output/calls`` and the ``tool_choice`` parameter over real DDS.

The node process (the installed executable, a tiny random-weight Llama) serves the action;
this test process is its client and also the robot: it serves the ``std_srvs`` services
of two robot actions (set_headlights, move_forward, as in test/config/functions_test.yaml)
and records every request that reaches them. A random model cannot choose to call, so
calls are forced with ``tool_choice`` (the call is grammar-constrained from its first
token) or ``reply_prefix``.
"""

import json
import threading
import time

from action_msgs.msg import GoalStatus
from node_harness import grep, PretendRobot, start_node, stop_node
import pytest
from rclpy.action import ActionClient
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros2_nano_llm.action import Generate
from ros2_nano_llm.msg import FunctionCall
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROBOT = '/test_action_robot'
LONG = 2000  # max_new_tokens of a reply that only ends when cancelled
ACTIONS = [
    {'name': 'set_headlights', 'description': 'Turn the headlights on or off.',
     'args': [{'name': 'on', 'type': 'bool', 'description': 'true for on', 'field': 'data'}],
     'service': f'{ROBOT}/set_headlights', 'type': 'std_srvs/srv/SetBool', 'timeout': 5.0},
    {'name': 'move_forward', 'description': 'Drive straight ahead one step (half a metre).',
     'service': f'{ROBOT}/move_forward', 'type': 'std_srvs/srv/Trigger', 'timeout': 5.0},
]


class Robot(PretendRobot):
    """A pretend robot in this process: two services that record ``(action, request)``."""

    def __init__(self):
        super().__init__('test_action_robot', ROBOT)


class Goals:
    """The test's ``~/generate`` client and ``~/output/calls`` subscriber."""

    def __init__(self, client):
        self.node = client.node
        self.client = ActionClient(self.node, Generate, f'{client.target}/generate')
        self.calls = []  # the 'ended' FunctionCall messages from ~/output/calls
        self._results = {}  # id(goal handle) -> (handle, its result future)
        self._cond = threading.Condition()
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(FunctionCall, f'{client.target}/output/calls',
                                      self._on_call, reliable)

    def _on_call(self, msg):
        if msg.event != 'ended':  # the calls that ran ('started' came first; issue 19)
            return
        with self._cond:
            self.calls.append(msg)
            self._cond.notify_all()

    def send(self, prompt, timeout=30.0, **fields):
        """Send a goal; return ``(goal_handle or None when rejected, feedback list)``."""
        assert self.client.wait_for_server(timeout_sec=timeout), 'no ~/generate server'
        feedback = []
        done = threading.Event()
        future = self.client.send_goal_async(
            Generate.Goal(prompt=prompt, **fields),
            feedback_callback=lambda msg: feedback.append(msg.feedback))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), 'the goal was not answered'
        handle = future.result()
        if not handle.accepted:
            return None, feedback
        # ask for the result at once, as `ros2 action send_goal` does
        self._results[id(handle)] = (handle, handle.get_result_async())
        return handle, feedback

    def result(self, handle, timeout=60.0):
        """Wait for a goal's result; return ``(status, result)``."""
        done = threading.Event()
        future = self._results.pop(id(handle))[1]
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), 'no result'
        response = future.result()
        return response.status, response.result

    def ask(self, prompt, **fields):
        """Send a goal and wait for its result; return ``(status, result, feedback)``."""
        handle, feedback = self.send(prompt, **fields)
        assert handle is not None, 'the goal was rejected'
        status, result = self.result(handle)
        time.sleep(0.2)  # feedback may trail the result on its own topic
        return status, result, feedback

    def cancel(self, handle, timeout=30.0):
        """Cancel a goal; return the cancel response."""
        done = threading.Event()
        future = handle.cancel_goal_async()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), 'the cancel was not answered'
        return future.result()

    def since(self, mark, count=0, timeout=10.0):
        """Return the calls published after the first ``mark`` (wait for ``count`` of them)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.calls) >= mark + count, timeout)
            return list(self.calls[mark:])


def _text(feedback):
    indexes = [f.token_index for f in feedback]
    assert indexes == list(range(len(feedback))), indexes  # every piece, in order
    return ''.join(f.text for f in feedback)


def _wait_feedback(feedback, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not feedback and time.monotonic() < deadline:
        time.sleep(0.01)
    assert feedback, 'no feedback arrived'


@pytest.fixture(scope='module')
def robot():
    """Serve the robot's services for the module."""
    robot = Robot()
    yield robot
    robot.close()


@pytest.fixture(scope='module')
def action_node(robot, tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama with the robot's two actions; add a goal client."""
    tmp = tmp_path_factory.mktemp('node_action')
    functions = tmp / 'functions.yaml'
    functions.write_text(yaml.safe_dump(ACTIONS))
    process, client = start_node(tmp, {'model': tiny_model_dir('llama'),
                                       'functions_file': str(functions), 'max_new_tokens': 8},
                                 name='nano_llm_action')
    goals = Goals(client)
    yield process, client, goals
    stop_node(process, client)


@pytest.fixture
def node(action_node):
    """Return (process, client, goals) with the default parameters and an empty chat."""
    process, client, goals = action_node
    results = client.set_params(reply_prefix='', tool_choice='auto', busy_policy='queue',
                                max_new_tokens=8)
    assert all(r.successful for r in results), results
    assert client.call('reset').success
    client.settle()
    yield process, client, goals
    assert process.alive, process.log()[-3000:]
    assert not grep(process, 'Traceback'), process.log()[-3000:]


def test_goal_streams_feedback_that_makes_up_the_result(node):
    process, client, goals = node
    mark = client.mark()
    status, result, feedback = goals.ask('Hello there', max_new_tokens=12)
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert result.reply and _text(feedback) == result.reply
    assert result.stop_reason in ('eos', 'length')
    assert len(feedback) <= 12 and list(result.calls) == []
    assert result.time_to_first_token > 0.0 and result.decode_rate > 0.0
    # the reply also went out on ~/output/* as for a topic prompt, and is in the chat
    turn, = client.wait_turn_end(mark['turn'])
    assert turn.text == result.reply
    assert client.wait_replies(mark['replies'])[0] == result.reply
    assert client.history_texts()[1:] == [('user', 'text', 'Hello there'),
                                          ('bot', 'text', result.reply)]
    assert grep(process, r"~/generate goal 'Hello there'")


def test_cancel_returns_the_partial_reply_and_the_chat_keeps_it(node):
    process, client, goals = node
    handle, feedback = goals.send('Tell me a very long story.', max_new_tokens=LONG)
    assert handle is not None
    _wait_feedback(feedback)
    response = goals.cancel(handle)
    assert len(response.goals_canceling) == 1
    status, result = goals.result(handle)
    assert status == GoalStatus.STATUS_CANCELED
    assert result.stop_reason == 'stopped'
    time.sleep(0.2)
    assert result.reply and _text(feedback) == result.reply
    assert 0 < len(feedback) < LONG
    assert client.history_texts()[1:] == [('user', 'text', 'Tell me a very long story.'),
                                          ('bot', 'text', result.reply)]
    # the chat goes on after the cancel
    status, after, _ = goals.ask('Go on.')
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert client.history_texts()[-2:] == [('user', 'text', 'Go on.'),
                                           ('bot', 'text', after.reply)]


def test_goals_share_the_chat_and_reset_clears_it(node):
    process, client, goals = node
    _, first, _ = goals.ask('one')
    mark = client.mark()
    client.publish('two')  # a topic prompt joins the same chat
    client.wait_turn_end(mark['turn'])
    two = client.wait_replies(mark['replies'])[0]
    _, third, _ = goals.ask('three')
    assert client.history_texts()[1:] == [
        ('user', 'text', 'one'), ('bot', 'text', first.reply),
        ('user', 'text', 'two'), ('bot', 'text', two),
        ('user', 'text', 'three'), ('bot', 'text', third.reply)]
    system = client.history_texts()[0]
    _, fourth, _ = goals.ask('four', reset=True)
    assert client.history_texts() == [system, ('user', 'text', 'four'),
                                      ('bot', 'text', fourth.reply)]


def test_goal_while_busy_follows_busy_policy(node):
    process, client, goals = node
    # drop: a goal during a reply is rejected, the reason logged
    assert client.set_params(busy_policy='drop')[0].successful
    first, feedback = goals.send('first', max_new_tokens=LONG)
    assert first is not None
    _wait_feedback(feedback)
    log_start = len(process.log())
    second, _ = goals.send('second')
    assert second is None
    process.wait_for_log(r"~/generate goal rejected: busy with a reply and busy_policy is 'drop'",
                         start=log_start)
    goals.cancel(first)
    assert goals.result(first)[0] == GoalStatus.STATUS_CANCELED
    # queue: the goal waits for the reply and is answered after it
    assert client.set_params(busy_policy='queue')[0].successful
    first, feedback = goals.send('third', max_new_tokens=LONG)
    _wait_feedback(feedback)
    second, _ = goals.send('fourth')
    assert second is not None
    goals.cancel(first)
    assert goals.result(first)[0] == GoalStatus.STATUS_CANCELED
    status, result = goals.result(second)
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert [e[2] for e in client.history_texts()[-4:] if e[0] == 'user'] == ['third', 'fourth']
    assert client.history_texts()[-1] == ('bot', 'text', result.reply)
    # a bad goal is rejected whatever the policy
    assert goals.send('hi', tool_choice='fly_away')[0] is None
    process.wait_for_log(r"goal rejected: tool_choice 'fly_away' is not")


def _as_requests(calls):
    return [(c.name, json.loads(c.args_json)) for c in calls]


def _robot_requests(requests):
    return [(name, {'on': r.data} if name == 'set_headlights' else {}) for name, r in requests]


def test_output_calls_carry_exactly_the_calls_that_reached_the_robot(node, robot):
    process, client, goals = node
    mark, calls_mark = robot.count(), len(goals.since(0))
    # a goal whose reply must call set_headlights: the call is constrained from its first token
    status, result, feedback = goals.ask('Lights on, please.', tool_choice='set_headlights',
                                         max_new_tokens=48)
    assert status == GoalStatus.STATUS_SUCCEEDED
    reached = robot.since(mark)
    assert reached and reached[0][0] == 'set_headlights'
    published = goals.since(calls_mark, len(reached))
    assert _as_requests(published) == _robot_requests(reached)
    assert _as_requests(result.calls) == _robot_requests(reached)
    turn_id = client.mark()['turn']
    for call in published:
        assert call.success and call.turn_id == turn_id and call.header.stamp.sec > 0
        state = 'on' if json.loads(call.args_json)['on'] else 'off'
        assert call.result == f'success: true, message: "headlights {state}"'
    # a topic prompt whose reply_prefix calls move_forward and then imitates a result
    mark, calls_mark = robot.count(), len(goals.since(0))
    prefix = 'move_forward()'
    assert client.set_params(reply_prefix=prefix)[0].successful
    _, reply = client.ask('Forward.')
    reached = robot.since(mark)
    assert [name for name, _ in reached][:1] == ['move_forward']
    assert _as_requests(goals.since(calls_mark, len(reached))) == _robot_requests(reached)
    # text that only imitates a call's result is no call
    mark, calls_mark = robot.count(), len(goals.since(0))
    imitation = 'Done -> success: true, message: "moved 0.5 m"'
    assert client.set_params(reply_prefix=imitation)[0].successful
    _, reply = client.ask('Forward again.')
    assert reply.startswith(imitation)
    assert _as_requests(goals.since(calls_mark, 0, timeout=1.0)) == \
        _robot_requests(robot.since(mark))


def test_tool_choice_parameter_applies_to_topic_prompts(node, robot):
    process, client, goals = node
    # refused with the reason: not a loaded function, or empty
    result, = client.set_params(tool_choice='fly_away')
    assert not result.successful and "not 'auto', 'required', 'none' nor a loaded function " \
        '(set_headlights, move_forward)' in result.reason
    result, = client.set_params(tool_choice='')
    assert not result.successful and 'tool_choice must be' in result.reason
    assert client.get_param('tool_choice') == 'auto'
    # required: every reply to ~/input/text starts with a call that reaches the robot
    # (room for the whole call: a random model's call takes more tokens than its text)
    assert all(r.successful for r in client.set_params(tool_choice='required',
                                                       max_new_tokens=48))
    mark, calls_mark = robot.count(), len(goals.since(0))
    client.ask('Do something.')
    reached = robot.since(mark)
    assert reached, 'required made no call'
    assert _as_requests(goals.since(calls_mark, len(reached))) == _robot_requests(reached)
    # none: even a reply_prefix that writes a call never calls
    assert all(r.successful for r in client.set_params(tool_choice='none',
                                                       reply_prefix='move_forward()'))
    mark, calls_mark = robot.count(), len(goals.since(0))
    for prompt in ('Forward.', 'Lights.', 'Anything.'):
        _, reply = client.ask(prompt)
        assert reply.startswith('move_forward()')
    assert robot.since(mark) == []
    assert goals.since(calls_mark, 0, timeout=1.0) == []
    # a goal's own tool_choice wins over the parameter
    assert client.set_params(reply_prefix='')[0].successful
    _, result, _ = goals.ask('Lights.', tool_choice='set_headlights', max_new_tokens=48)
    assert [c.name for c in result.calls][:1] == ['set_headlights']


def test_deactivate_ends_a_running_goal_and_activate_serves_goals_again(node):
    process, client, goals = node
    handle, feedback = goals.send('Tell me a very long story.', max_new_tokens=LONG)
    assert handle is not None
    _wait_feedback(feedback)
    assert client.transition('deactivate')
    status, result = goals.result(handle, timeout=20.0)
    assert status == GoalStatus.STATUS_ABORTED  # stopped, not finished: the partial reply
    assert result.stop_reason == 'stopped' and result.reply
    # the server stays while inactive (so the result above arrives) and rejects goals
    log_start = len(process.log())
    assert goals.send('While inactive.')[0] is None
    process.wait_for_log(r'~/generate goal rejected: the node is not active', start=log_start)
    assert client.transition('activate')
    client.wait_connected()
    assert client.history_texts()[-1] == ('bot', 'text', result.reply)  # the chat was kept
    status, result, feedback = goals.ask('Back again.')
    assert status == GoalStatus.STATUS_SUCCEEDED and _text(feedback) == result.reply

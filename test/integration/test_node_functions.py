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
Bot functions as robot actions, over real DDS between processes.

This test process is the robot: it serves ``std_srvs/SetBool`` and ``std_srvs/Trigger``
services (test/config/functions_test.yaml lists them) from a MultiThreadedExecutor. The
node process (the installed executable, a tiny random-weight Llama) calls them through
``~/call_function`` and, during generation, when its reply calls a function. A random
model cannot choose to call, so replies are steered with the ``reply_prefix`` parameter.
The embedded SmolLM2 gets one plain request too; whether it calls is only recorded.
"""

import re
import threading
import time

from node_harness import grep, PretendRobot, REPO_ROOT, start_node, stop_node
import pytest
from rcl_interfaces.msg import ParameterType, ParameterValue
from ros2_nano_llm.srv import CallFunction
from std_srvs.srv import Trigger

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FUNCTIONS_YAML = REPO_ROOT / 'test' / 'config' / 'functions_test.yaml'
EMPTY_YAML = REPO_ROOT / 'test' / 'config' / 'functions_empty.yaml'
ROBOT = '/test_robot'
SLOW_S = 5.0      # how long the slow service sleeps before it answers
TIMEOUT_S = 1.0   # slow_action's timeout in functions_test.yaml
NAMES = ['TIME', 'set_headlights', 'move_forward', 'slow_action', 'one_second', 'long_action']
ONE_S = 1.0      # how long one_second's service takes (its timeout is 8 s)


class Robot(PretendRobot):
    """A pretend robot in this process: services that record ``(time, action, request)``."""

    def __init__(self):
        self.answered = []  # (time.monotonic(), action) when a slow service answered
        super().__init__('test_robot', ROBOT, threads=10, close_timeout=SLOW_S + 2.0, services={
            'slow_action': (Trigger, self._slow_action),
            'one_second': (Trigger, self._one_second),
            'long_action': (Trigger, self._long_action)})

    def entry(self, action, request):
        """Keep when the request arrived, too."""
        return time.monotonic(), action, request

    def wait(self, mark: int, timeout: float = 10.0):
        """Wait for a request after the first ``mark``; return the new ones."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.requests) > mark, timeout), \
                'the robot received no request'
            return list(self.requests[mark:])

    def _answer_late(self, action, seconds, message, answered, request, response):
        self.record(action, request)
        time.sleep(seconds)
        response.success, response.message = True, message
        if answered:
            with self._cond:
                self.answered.append((time.monotonic(), action))
        return response

    def _slow_action(self, request, response):
        return self._answer_late('slow_action', SLOW_S, 'too late', False, request, response)

    def _one_second(self, request, response):
        return self._answer_late('one_second', ONE_S, 'done after 1 s', True, request, response)

    def _long_action(self, request, response):
        return self._answer_late('long_action', SLOW_S, 'long action done', True, request,
                                 response)


@pytest.fixture(scope='module')
def robot():
    """Serve the robot's services for the module."""
    robot = Robot()
    yield robot
    robot.close()


@pytest.fixture(scope='module')
def functions_node(robot, tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama with the test robot's actions and TIME."""
    process, client = start_node(
        tmp_path_factory.mktemp('node_functions'),
        {'model': tiny_model_dir('llama'), 'functions_file': str(FUNCTIONS_YAML),
         'builtin_functions': ['TIME'], 'max_new_tokens': 8},
        name='nano_llm_functions')
    yield process, client
    stop_node(process, client)


@pytest.fixture
def node(functions_node):
    """Return (process, client) with no reply prefix and an empty chat."""
    process, client = functions_node
    assert all(r.successful for r in client.set_params(reply_prefix=''))
    assert client.call('reset').success
    client.settle()
    yield process, client
    assert process.alive, process.log()[-3000:]


def call_function(client, name, args_json='', timeout=30.0):
    """Call ``~/call_function``; return (success, result, seconds taken)."""
    start = time.monotonic()
    response = client.call('call_function', CallFunction.Request(name=name, args_json=args_json),
                           timeout=timeout)
    return response.success, response.result, time.monotonic() - start


def test_list_functions_shows_the_docs_the_model_sees(node):
    process, client = node
    response = client.call('list_functions')
    assert list(response.names) == NAMES
    descriptions = dict(zip(response.names, response.descriptions))
    assert descriptions['set_headlights'] == (
        'set_headlights(on: bool) - Turn the headlights on or off. '
        '(on: true to switch them on, false for off)')
    assert descriptions['move_forward'] == (
        'move_forward() - Drive straight ahead one step (half a metre).')
    assert descriptions['TIME'] == 'TIME() - Returns the current time.'
    for line in descriptions.values():
        assert f'* {line}' in response.docs
    # the same docs block is in the system prompt
    role, _, system = client.history_texts()[0]
    assert role == 'system' and response.docs in system
    process.wait_for_log(r"robot actions from '.*functions_test.yaml': set_headlights -> "
                         r'/test_robot/set_headlights, move_forward -> /test_robot/move_forward')
    process.wait_for_log(r'functions TIME, set_headlights, move_forward, slow_action, '
                         r'one_second, long_action')


def test_call_function_runs_each_robot_action(node, robot):
    process, client = node
    mark = robot.count()
    ok, result, _ = call_function(client, 'set_headlights', '{"on": true}')
    assert ok and result == 'success: true, message: "headlights on"'
    (_, action, request), = robot.since(mark)
    assert action == 'set_headlights' and request.data is True
    ok, result, _ = call_function(client, 'set_headlights', '{"on": false}')
    assert ok and result == 'success: true, message: "headlights off"'
    assert robot.since(mark)[1][2].data is False
    ok, result, _ = call_function(client, 'move_forward')
    assert ok and result == 'success: true, message: "moved 0.5 m"'
    assert [r[1] for r in robot.since(mark)] == ['set_headlights', 'set_headlights',
                                                 'move_forward']
    ok, result, _ = call_function(client, 'TIME', '{}')
    assert ok and re.fullmatch(r'\d{1,2}:\d\d [AP]M', result), result
    assert grep(process, r'~/call_function set_headlights\(\{"on": true\}\) -> success: true')


def test_call_function_bad_requests_fail_with_the_reason(node, robot):
    process, client = node
    mark = robot.count()
    for name, args, error in [
            ('fly_away', '{}', "unknown function 'fly_away'; available: TIME, set_headlights"),
            ('set_headlights', '{"on": "yes"}', "bad arguments for 'set_headlights'"),
            ('set_headlights', '{}', "bad arguments for 'set_headlights'"),
            ('set_headlights', '{"on": tru', 'malformed JSON arguments'),
            ('set_headlights', '[true]', 'arguments must be a JSON object'),
            ('move_forward', '{"speed": 2}', "bad arguments for 'move_forward'")]:
        ok, result, _ = call_function(client, name, args)
        assert not ok and result.startswith('error: ') and error in result, (name, args, result)
    assert robot.since(mark) == []  # nothing bad reached the robot
    assert client.state() == 'active'
    _, reply = client.ask('Still there?')
    assert reply


def test_reply_that_calls_an_action_runs_it_during_generation(node, robot):
    process, client = node
    prefix = 'set_headlights(on=True)'
    assert all(r.successful for r in client.set_params(reply_prefix=prefix))
    mark = robot.count()
    turn, reply = client.ask('Lights, please.')
    (when, action, request), = robot.since(mark)
    assert action == 'set_headlights' and request.data is True
    assert when < turn.eos_at  # called while the reply was being generated
    assert reply.startswith(prefix) and 'success: true, message: "headlights on"' in reply
    assert turn.text == reply
    entries = client.history_texts()
    assert [e[0] for e in entries] == ['system', 'user', 'bot']
    assert entries[-1] == ('bot', 'text', reply)
    # the next turn goes on from the chat that holds the result
    assert all(r.successful for r in client.set_params(reply_prefix=''))
    client.ask('Thanks.')
    assert [e[0] for e in client.history_texts()][-2:] == ['user', 'bot']
    assert robot.since(mark + 1) == []


def test_slow_service_gives_an_error_text_quickly_and_the_node_stays_up(node, robot):
    process, client = node
    ok, result, took = call_function(client, 'slow_action')
    assert not ok and result == (f"error: slow_action: service '{ROBOT}/slow_action' did not "
                                 f'answer within {TIMEOUT_S:g} s')
    assert TIMEOUT_S <= took < SLOW_S - 1.0, took
    # the same during a reply: the model gets the error text and the reply goes on
    assert all(r.successful for r in client.set_params(reply_prefix='slow_action()'))
    mark = client.mark()
    sent = client.publish('Do the slow thing.')
    turn, = client.wait_turn_end(mark['turn'], timeout=30.0)
    reply = client.wait_replies(mark['replies'])[0]
    assert 'did not answer within 1 s' in reply, reply
    assert turn.eos_at - sent < SLOW_S - 1.0
    # the executor was never blocked: services answer, and the next prompt is answered
    assert client.call('get_history', timeout=5.0).success
    assert all(r.successful for r in client.set_params(reply_prefix=''))
    _, reply = client.ask('Are you there?')
    assert reply and client.state() == 'active'
    assert not grep(process, 'Traceback')


def test_concurrent_robot_actions_never_block_the_executor(node, robot):
    """Issue 11 item 3: four calls of a 1 s action at once all succeed; services answer."""
    process, client = node
    mark = robot.count()
    results = [None] * 4
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, call_function(client, 'one_second', timeout=30.0))) for i in range(4)]
    for thread in threads:
        thread.start()
    with robot._cond:
        assert robot._cond.wait_for(lambda: robot.count() >= mark + 4, 10.0), robot.since(mark)
    # answered while the four calls wait for the robot (before any of them got its answer)
    assert client.call('get_history', timeout=5.0).success
    history_at = time.monotonic()
    for thread in threads:
        thread.join(30.0)
    assert [r[:2] for r in results] == [(True, 'success: true, message: "done after 1 s"')] * 4
    answered = [when for when, action in robot.answered if action == 'one_second']
    assert len(answered) >= 4 and history_at < min(answered[-4:])
    assert not grep(process, 'did not answer within 8 s')


def test_stop_interrupts_a_running_robot_action_and_the_model_is_told(node, robot):
    """Issue 11 item 8: ~/stop ends the wait for a 5 s action at once."""
    process, client = node
    assert all(r.successful for r in client.set_params(reply_prefix='long_action()'))
    mark, robot_mark = client.mark(), robot.count()
    client.publish('Take your time.')
    (_, action, _), = robot.wait(robot_mark)
    assert action == 'long_action'
    response = client.call('stop', timeout=30.0)
    stopped_at = time.monotonic()
    assert response.success and '1 robot action call(s) interrupted' in response.message
    turn, = client.wait_turn_end(mark['turn'], timeout=30.0)
    reply = client.wait_replies(mark['replies'])[0]
    assert 'long_action() -> error: long_action: interrupted by ~/stop' in reply, reply
    assert client.history_texts()[-1] == ('bot', 'text', reply)  # the model sees it next turn
    with robot._cond:  # the robot answers later; by then the node had moved on
        assert robot._cond.wait_for(
            lambda: any(a == 'long_action' for _, a in robot.answered), SLOW_S + 5.0)
        answered = [when for when, a in robot.answered if a == 'long_action'][-1]
    assert stopped_at < answered and turn.eos_at < answered
    assert all(r.successful for r in client.set_params(reply_prefix=''))
    _, reply = client.ask('Still there?')
    assert reply and client.state() == 'active'


def test_functions_reload_on_configure_and_bad_files_fail_configure(node, robot, tmp_path):
    process, client = node
    assert client.transition('deactivate') and client.transition('cleanup')
    start = len(process.log())
    # a file that is not there, and a built-in that does not exist: FAILURE with the reason
    missing = tmp_path / 'nope.yaml'
    assert all(r.successful for r in client.set_params(functions_file=str(missing)))
    assert not client.transition('configure')
    process.wait_for_log(r'configure failed: bot functions: cannot read robot actions file '
                         rf"'{re.escape(str(missing))}': No such file", start=start)
    bad = tmp_path / 'bad.yaml'
    bad.write_text('- name: lights\n  service: /x\n  type: std_srvs/srv/NoSuchType\n')
    assert all(r.successful for r in client.set_params(functions_file=str(bad)))
    assert not client.transition('configure')
    process.wait_for_log(r"configure failed: bot functions: robot action 'lights': unknown "
                         r"service type 'std_srvs/srv/NoSuchType'", start=start)
    assert all(r.successful for r in client.set_params(
        functions_file=str(FUNCTIONS_YAML), builtin_functions=['TIME', 'NOPE']))
    assert not client.transition('configure')
    process.wait_for_log(r'configure failed: bot functions: builtin_functions: there is no '
                         r"built-in function 'NOPE'; available: .*DATE", start=start)
    assert client.state() == 'unconfigured'
    # an empty actions file and no built-ins: function calling is off
    assert client.set_params(functions_file=str(EMPTY_YAML))[0].successful
    no_names = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=[])
    assert client.set_raw_param('builtin_functions', no_names).successful
    assert client.transition('configure') and client.transition('activate')
    response = client.call('list_functions')
    assert list(response.names) == [] and response.docs == ''
    ok, result, _ = call_function(client, 'set_headlights', '{"on": true}')
    assert not ok and 'no bot functions are enabled' in result
    # back to the test robot: the clients are made again and work
    assert client.transition('deactivate') and client.transition('cleanup')
    assert all(r.successful for r in client.set_params(
        functions_file=str(FUNCTIONS_YAML), builtin_functions=['TIME']))
    assert client.transition('configure') and client.transition('activate')
    client.wait_connected()
    assert list(client.call('list_functions').names) == NAMES
    mark = robot.count()
    ok, result, _ = call_function(client, 'set_headlights', '{"on": true}')
    assert ok and 'headlights on' in result
    assert [r[1] for r in robot.since(mark)] == ['set_headlights']


def test_smollm2_with_robot_actions_replies_and_stays_up(robot, tmp_path, record_property):
    """SmolLM2 sees the function docs; it may or may not call (135M is weak): recorded only."""
    process, client = start_node(
        tmp_path, {'model': 'default', 'functions_file': str(FUNCTIONS_YAML),
                   'max_new_tokens': 48,
                   'system_prompt': 'You are the assistant of a small robot. You can control '
                                    'it by calling functions.'},
        name='nano_llm_functions_smollm2')
    try:
        mark = robot.count()
        turn, reply = client.ask('Turn on the headlights.', timeout=180.0)
        calls = [(action, getattr(request, 'data', None))
                 for _, action, request in robot.since(mark)]
        record_property('smollm2_reply', reply)
        record_property('smollm2_calls', repr(calls))
        print(f'SmolLM2 reply: {reply!r}; robot calls: {calls}')
        assert turn.text == reply and len(turn.eos) == 1
        assert client.state() == 'active' and process.alive
        assert client.call('list_functions').names[0] == 'set_headlights'
        assert not grep(process, 'Traceback')
    finally:
        stop_node(process, client)

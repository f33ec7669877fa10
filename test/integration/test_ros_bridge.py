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
The robot action bridge over real rclpy/DDS: bot function calls -> ROS services.

One process, two nodes (test servers and the bridge's client node) spun by a
MultiThreadedExecutor in a thread, on a private domain id, discovery on localhost only.
"""

import os
import threading
import time
import uuid

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'  # before rclpy initialises

from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from ros2_nano_llm.functions import (BotFunctions, CallDetector, execute,  # noqa: E402
                                     FunctionRegistry, parse_json_call)
from ros2_nano_llm.ros.ros_bridge import (ActionArg, build_request,  # noqa: E402
                                          check_action_type, load_actions, parse_actions,
                                          RobotAction, RosServiceFunctions)
from spun_nodes import spun_nodes  # noqa: E402 - after the discovery setting
from std_msgs.msg import Float64, Int8  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

pytestmark = pytest.mark.integration

CONFIG = os.path.join(os.path.dirname(__file__), '..', '..', 'config', 'functions.yaml')
PREFIX = f'/test_bridge_{uuid.uuid4().hex[:8]}'


class Robot:
    """Test-side services that record every request they get."""

    def __init__(self, node):
        self.requests = []
        group = ReentrantCallbackGroup()
        node.create_service(SetBool, f'{PREFIX}/set_headlights', self.on_lights,
                            callback_group=group)
        node.create_service(Trigger, f'{PREFIX}/stop', self.on_stop, callback_group=group)
        node.create_service(Trigger, f'{PREFIX}/slow', self.on_slow, callback_group=group)

    def on_lights(self, request, response):
        self.requests.append(('set_headlights', request.data))
        response.success = True
        response.message = f'headlights {"on" if request.data else "off"}'
        return response

    def on_stop(self, request, response):
        self.requests.append(('stop', None))
        response.success = True
        response.message = 'stopped'
        return response

    def on_slow(self, request, response):
        self.requests.append(('slow', None))
        time.sleep(SLOW_SERVER_S)
        response.success = True
        return response


SLOW_SERVER_S = 3.0  # the slow service answers this late; its action's timeout is 0.4 s


ACTIONS = [
    {'name': 'set_headlights', 'description': 'Turn the headlights on or off.',
     'args': [{'name': 'on', 'type': 'bool', 'description': 'true for on', 'field': 'data'}],
     'service': f'{PREFIX}/set_headlights', 'type': 'std_srvs/srv/SetBool', 'timeout': 5.0},
    {'name': 'stop', 'description': 'Stop all motion.', 'service': f'{PREFIX}/stop',
     'type': 'std_srvs/srv/Trigger', 'timeout': 5.0},
    {'name': 'slow_action', 'description': 'Answers too late.', 'service': f'{PREFIX}/slow',
     'type': 'std_srvs/srv/Trigger', 'timeout': 0.4},
    {'name': 'missing_action', 'description': 'Nobody serves it.',
     'service': f'{PREFIX}/missing', 'type': 'std_srvs/srv/Trigger', 'timeout': 0.5},
]


@pytest.fixture(scope='module')
def ros():
    """Start a private DDS domain with the robot's servers and a client node."""
    with spun_nodes('test_robot', 'test_nano_llm') as (server_node, client_node):
        yield client_node, Robot(server_node)


@pytest.fixture
def bridge(ros):
    """Bridge the test actions for one test (its own records; no registry is touched)."""
    node, robot = ros
    robot.requests.clear()
    before = BotFunctions.names(all=True)
    bridge = RosServiceFunctions(node, ACTIONS, ReentrantCallbackGroup())
    yield bridge
    bridge.destroy()
    assert BotFunctions.names(all=True) == before


def run_text(text, functions):
    """Detect the calls in model output and execute them as the generation loop does."""
    return [execute(call, functions) for call in CallDetector(functions).feed(text, final=True)]


def test_setbool_from_python_style_calls(bridge, ros):
    _, robot = ros
    results = run_text('Sure! set_headlights(on=True) and later set_headlights(False).',
                       bridge.functions)
    assert results == ['success: true, message: "headlights on"',
                       'success: true, message: "headlights off"']
    assert robot.requests == [('set_headlights', True), ('set_headlights', False)]


def test_trigger_from_template_call(bridge, ros):
    _, robot = ros
    results = run_text('<tool_call>\n{"name": "stop", "arguments": {}}\n</tool_call>',
                       bridge.functions)
    assert results == ['success: true, message: "stopped"']
    assert robot.requests == [('stop', None)]
    # the node's ~/call_function path
    assert execute(parse_json_call('set_headlights', '{"on": true}'), bridge.functions) == (
        'success: true, message: "headlights on"')


def test_bad_arguments_never_reach_the_service(bridge, ros):
    _, robot = ros
    results = run_text('set_headlights(on="yes") set_headlights() stop(1)', bridge.functions)
    assert all(r.startswith('error: bad arguments for ') for r in results), results
    assert "argument 'on' must be bool" in results[0]
    assert robot.requests == []
    assert bridge.call('set_headlights', on=3) == "error: set_headlights: 'on' must be bool, got 3"


def test_server_too_slow_gives_error_quickly(bridge, ros):
    start = time.monotonic()
    [result] = run_text('slow_action()', bridge.functions)
    elapsed = time.monotonic() - start
    assert result == ("error: slow_action: service '" + PREFIX + "/slow' did not answer "
                      'within 0.4 s')
    assert elapsed < SLOW_SERVER_S  # the bridge gave up without waiting for the answer
    # the bridge still works after a timeout
    assert run_text('stop()', bridge.functions) == ['success: true, message: "stopped"']


def test_missing_service_gives_error_quickly(bridge):
    start = time.monotonic()
    [result] = run_text('missing_action()', bridge.functions)
    assert result == (f"error: missing_action: service '{PREFIX}/missing' is not available "
                      '(waited 0.5 s)')
    assert time.monotonic() - start < 5.0  # not hanging on the missing service


def test_records_docs_and_an_optional_registry(ros):
    node, robot = ros
    robot.requests.clear()
    before = BotFunctions.names(all=True)
    bridge = RosServiceFunctions(node, ACTIONS[:2])
    record = BotFunctions.find('set_headlights', bridge.functions)
    assert record.source == 'ros' and not record.testable and record.timeout == 6.0
    assert BotFunctions.names(all=True) == before  # the bridge wrote into no registry
    docs = BotFunctions.generate_docs(functions=bridge.functions)
    assert '* set_headlights(on: bool) - Turn the headlights on or off. (on: true for on)' in docs
    assert '* stop() - Stop all motion.' in docs
    schema = record.schema
    assert schema['properties'] == {'on': {'type': 'boolean', 'description': 'true for on'}}
    # a library user may put them into a registry; a newer bridge replaces them there
    registry = FunctionRegistry()
    bridge.register(registry)
    registry.test()                              # must not call the robot
    assert robot.requests == []
    second = RosServiceFunctions(node, ACTIONS[:1], registry=registry)
    bridge.destroy()
    assert registry.find('set_headlights') is second.functions[0]
    assert registry.find('stop') is None
    second.destroy()
    assert registry.find('set_headlights') is None
    assert bridge.call('stop') == 'error: stop: the robot action bridge was shut down'


def test_interrupt_ends_a_waiting_call_at_once(bridge, ros):
    _, robot = ros
    results = []
    thread = threading.Thread(
        target=lambda: results.extend(run_text('slow_action()', bridge.functions)))
    started = time.monotonic()
    thread.start()
    while not robot.requests:
        assert time.monotonic() - started < 5.0, 'the slow service got no request'
        time.sleep(0.01)
    assert bridge.interrupt('interrupted by the test') == 1
    thread.join(2.0)
    assert not thread.is_alive() and time.monotonic() - started < 0.4 + 1.0
    assert results == ['error: slow_action: interrupted by the test']
    assert bridge.interrupt() == 0  # nothing waits any more
    assert run_text('stop()', bridge.functions) == ['success: true, message: "stopped"']


def test_name_clash_with_a_python_function(ros):
    node, _ = ros
    BotFunctions.load(test=False)
    clash = dict(ACTIONS[1], name='DATE')
    with pytest.raises(ValueError, match="robot action 'DATE' has the same name"):
        RosServiceFunctions(node, [clash], registry=BotFunctions)
    assert BotFunctions.find('DATE').source == 'python'


def test_example_config_loads_and_bridges(ros):
    node, _ = ros
    actions = load_actions(CONFIG)
    assert [a.name for a in actions] == ['move_forward', 'stop', 'set_headlights']
    assert actions[2].args == (ActionArg('on', 'bool', 'true to switch them on, false for off',
                                         'data'),)
    bridge = RosServiceFunctions.from_yaml(node, CONFIG)
    try:
        assert sorted(f.name for f in bridge.functions) == sorted(a.name for a in actions)
        assert BotFunctions.find('set_headlights', bridge.functions).signature_text() == \
            'set_headlights(on: bool)'
    finally:
        bridge.destroy()


def test_empty_config_means_no_actions(tmp_path):
    for text in ('', '[]\n', 'actions: []\n'):
        path = tmp_path / 'f.yaml'
        path.write_text(text)
        assert load_actions(path) == []


@pytest.mark.parametrize('data,message', [
    ({'name': 'x'}, 'expected a list'),
    ([{'name': 'bad name', 'service': '/s', 'type': 'std_srvs/srv/Trigger'}],
     'name must be a Python identifier'),
    ([{'name': 'a', 'type': 'std_srvs/srv/Trigger'}], 'service is required'),
    ([{'name': 'a', 'service': '/s', 'type': 'SetBool'}], 'type must look like'),
    ([{'name': 'a', 'service': '/s', 'type': 'std_srvs/srv/Trigger', 'timeout': 0}],
     'timeout must be a positive number'),
    ([{'name': 'a', 'service': '/s', 'type': 'std_srvs/srv/Trigger', 'sevice': '/t'}],
     r"unknown key\(s\) \['sevice'\]"),
    ([{'name': 'a', 'service': '/s', 'type': 'std_srvs/srv/SetBool',
       'args': [{'name': True, 'type': 'bool'}]}], 'quote YAML words'),
    ([{'name': 'a', 'service': '/s', 'type': 'std_srvs/srv/SetBool',
       'args': [{'name': 'on', 'type': 'double'}]}], 'use one of bool, int, float, str'),
    ([{'name': 'a', 'service': '/s', 'type': 'std_srvs/srv/Trigger'},
      {'name': 'a', 'service': '/t', 'type': 'std_srvs/srv/Trigger'}], 'duplicate action'),
])
def test_yaml_validation_errors(data, message):
    with pytest.raises(ValueError, match=message):
        parse_actions(data, origin='functions.yaml')


def test_unreadable_or_invalid_yaml(tmp_path):
    with pytest.raises(ValueError, match='cannot read robot actions file'):
        load_actions(tmp_path / 'missing.yaml')
    path = tmp_path / 'bad.yaml'
    path.write_text('- name: [unclosed\n')
    with pytest.raises(ValueError, match='is not valid YAML'):
        load_actions(path)


def _action(type_name, args=()):
    return RobotAction('act', 'Test.', '/s', type_name, tuple(args))


@pytest.mark.parametrize('action,message', [
    (_action('no_such_pkg/srv/Foo'), "package 'no_such_pkg' has no Python interfaces"),
    (_action('std_srvs/srv/Nope'), "'std_srvs.srv' has no service 'Nope'"),
    (_action('std_srvs/srv/SetBool', [ActionArg('x', 'bool')]),
     "needs request field 'x', but std_srvs/srv/SetBool request fields are: data"),
    (_action('std_srvs/srv/SetBool', [ActionArg('x', 'float', field='data')]),
     "cannot fill request field 'data' of type 'boolean'"),
    (_action('sensor_msgs/srv/SetCameraInfo', [ActionArg('info', 'str', field='camera_info')]),
     "of type 'sensor_msgs/CameraInfo' \\(only primitive fields"),
])
def test_service_type_errors(action, message):
    with pytest.raises(ValueError, match=message):
        check_action_type(action)


def test_build_request_types_and_ranges():
    distance = RobotAction('move', 'Move.', '/m', 'x/srv/Y',
                           (ActionArg('d', 'float', field='data'),))
    assert build_request(Float64, distance, {'d': 2}).data == 2.0
    with pytest.raises(ValueError, match="'d' must be float, got 'far'"):
        build_request(Float64, distance, {'d': 'far'})
    small = RobotAction('n', 'N.', '/n', 'x/srv/Y', (ActionArg('n', 'int', field='data'),))
    assert build_request(Int8, small, {'n': -128}).data == -128
    with pytest.raises(ValueError, match=r"'n' must be in \[-128, 127\], got 300"):
        build_request(Int8, small, {'n': 300})
    with pytest.raises(ValueError, match="'n' must be int, got True"):
        build_request(Int8, small, {'n': True})

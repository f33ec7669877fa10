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
functions_file entries: bounds on the file, every kind's configure errors, argument names.

The bridge runs in this process over real rclpy/DDS (a private context): a test node serves
or subscribes, the bridge's node calls or publishes. No model here.
"""

import os
import resource
import time

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'  # before rclpy initialises

from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from ros2_nano_llm.functions import execute, parse_json_call  # noqa: E402
from ros2_nano_llm.ros.robot import load_entries, parse_entries, RobotFunctions  # noqa: E402
from ros2_nano_llm.ros.robot.entries import MAX_ENTRIES, MAX_FILE_BYTES  # noqa: E402
# the names of the bridge before robot/: the cases of issue 21 (items 10, 11) use them
from ros2_nano_llm.ros.ros_bridge import load_actions, RosServiceFunctions  # noqa: E402
from spun_nodes import spun_nodes  # noqa: E402 - after the discovery setting
from std_msgs.msg import String  # noqa: E402
from test_msgs.srv import BasicTypes  # noqa: E402

pytestmark = pytest.mark.integration

REPO = os.path.join(os.path.dirname(__file__), '..', '..')
# "billion laughs": 500 bytes that expand to 9**9 strings once the description is read
BOMB = """\
- name: greet
  service: /greet
  type: std_srvs/srv/Trigger
  description: [&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"],
    &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b],
    &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d],
    &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], &g [*f,*f,*f,*f,*f,*f,*f,*f,*f],
    &h [*g,*g,*g,*g,*g,*g,*g,*g,*g], &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]]
"""


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_billion_laughs_is_refused_at_once(tmp_path):
    path = tmp_path / 'bomb.yaml'
    path.write_text(BOMB)
    before = _rss_mb()
    start = time.monotonic()
    with pytest.raises(ValueError, match=r'YAML aliases \(\*name\) are not allowed'):
        load_actions(path)
    print(f'billion laughs refused in {time.monotonic() - start:.3f} s, '
          f'max RSS +{_rss_mb() - before:.1f} MB')
    assert _rss_mb() - before < 50.0  # nothing was expanded


def test_huge_files_and_too_many_entries_are_refused(tmp_path):
    huge = tmp_path / 'huge.yaml'
    with open(huge, 'w') as f:  # 50 MB of comments: refused by its size, unread
        f.truncate(50 * 1024 * 1024)
    with pytest.raises(ValueError, match=f'has {50 * 1024 * 1024} bytes; at most '
                                         f'{MAX_FILE_BYTES} are taken'):
        load_actions(huge)
    many = tmp_path / 'many.yaml'
    many.write_text(''.join(f'- {{name: a{i}, service: /s{i}, type: std_srvs/srv/Trigger}}\n'
                            for i in range(MAX_ENTRIES + 1)))
    with pytest.raises(ValueError, match=f'{MAX_ENTRIES + 1} entries; at most {MAX_ENTRIES}'):
        load_entries(many)
    deep = tmp_path / 'deep.yaml'
    deep.write_text('[' * 50000 + ']' * 50000)
    with pytest.raises(ValueError, match='nests too deeply|not valid YAML'):
        load_entries(deep)
    fifo = tmp_path / 'fifo.yaml'
    os.mkfifo(fifo)  # nobody writes it: opening it must not wait for a writer
    with pytest.raises(ValueError, match='is not a regular file'):
        load_actions(fifo)
    long_text = tmp_path / 'long.yaml'
    long_text.write_text('- {name: a, service: /s, type: std_srvs/srv/Trigger, description: '
                         + 'x' * 5000 + '}\n')
    with pytest.raises(ValueError, match='description has 5000 characters'):
        load_entries(long_text)


@pytest.fixture(scope='module')
def ros():
    """Yield a test node (the robot side) and the bridge's node, spun in a thread."""
    with spun_nodes('test_robot_entries_robot', 'test_robot_entries') as nodes:
        yield nodes


def test_any_argument_name_works_name_self_values(ros):
    # an argument named `name` once broke every call: "got multiple values for argument"
    robot, node = ros
    got = []

    def serve(request, response):
        got.append((request.string_value, request.int32_value, request.float64_value))
        response.string_value = f'hello {request.string_value}'
        return response
    server = robot.create_service(BasicTypes, '/test_robot_entries/greet', serve)
    bridge = RosServiceFunctions(node, [{
        'name': 'greet', 'service': '/test_robot_entries/greet',
        'type': 'test_msgs/srv/BasicTypes',
        'args': [{'name': 'name', 'type': 'str', 'field': 'string_value'},
                 {'name': 'self', 'type': 'int', 'field': 'int32_value'},
                 {'name': 'values', 'type': 'float', 'field': 'float64_value'}]}],
        ReentrantCallbackGroup())
    try:
        result = execute(parse_json_call('greet', '{"name": "Ada", "self": 3, "values": 1.5}'),
                         bridge.functions)
        assert 'string_value: "hello Ada"' in result, result
        assert bridge.call('greet', name='Bob', self=1, values=2.0).count('hello Bob') == 1
        assert got == [('Ada', 3, 1.5), ('Bob', 1, 2.0)]
    finally:
        bridge.destroy()
        robot.destroy_service(server)


def test_keyword_argument_names_are_refused_at_configure():
    with pytest.raises(ValueError, match="arg name 'class' is a Python keyword"):
        parse_entries([{'name': 'a', 'service': '/s', 'type': 'std_srvs/srv/SetBool',
                        'args': [{'name': 'class', 'type': 'bool', 'field': 'data'}]}])


def test_a_topic_entry_publishes_once_and_keeps_to_its_choices(ros):
    robot, node = ros
    got = []
    sub = robot.create_subscription(String, '/test_robot_entries/say', got.append, 10)
    bridge = RobotFunctions(node, [{
        'name': 'say', 'topic': '/test_robot_entries/say', 'type': 'std_msgs/msg/String',
        'args': [{'name': 'text', 'type': 'str', 'field': 'data', 'choices': ['hi', 'bye']}]}])
    try:
        deadline = time.monotonic() + 10.0
        while robot.count_publishers('/test_robot_entries/say') == 0 or \
                bridge._callers['say']._publisher.get_subscription_count() == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert execute(parse_json_call('say', '{"text": "shout"}'), bridge.functions) \
            .startswith("error: bad arguments for 'say': argument 'text' must be one of")
        assert bridge.call('say', text='hi') == 'published on /test_robot_entries/say'
        deadline = time.monotonic() + 5.0
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m.data for m in got] == ['hi']
        assert bridge.functions[0].schema['properties']['text']['enum'] == ['hi', 'bye']
    finally:
        bridge.destroy()
        robot.destroy_subscription(sub)


SERVICE = {'name': 'srv', 'service': '/s', 'type': 'test_msgs/srv/BasicTypes'}
TOPIC = {'name': 'drive', 'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist'}
ACTION = {'name': 'fib', 'action': '/fibonacci', 'type': 'test_msgs/action/Fibonacci'}
READ = {'name': 'odom', 'read': '/odom', 'type': 'nav_msgs/msg/Odometry'}


@pytest.mark.parametrize('entry,message', [
    (dict(SERVICE, type='no_such_pkg/srv/X'),
     "robot action 'srv': unknown service type 'no_such_pkg/srv/X': package 'no_such_pkg' "
     'has no Python interfaces'),
    (dict(SERVICE, args=[{'name': 'v', 'type': 'float', 'field': 'float64_valu'}]),
     "robot action 'srv': arg 'v' needs request field 'float64_valu', but "
     'test_msgs/srv/BasicTypes request fields are: bool_value'),
    (dict(SERVICE, set={'string_value': 3}),
     "robot action 'srv': set 'string_value': 'string_value' must be str, got 3"),
    (dict(TOPIC, duration=1.0, after={'linear.x': 'stop'}),
     "robot action 'drive': after 'linear.x': 'linear.x' must be a number, got 'stop'"),
    (dict(TOPIC, args=[{'name': 'v', 'type': 'float', 'field': 'linear.q'}]),
     "robot action 'drive': arg 'v' needs message field 'linear.q', but "
     "geometry_msgs/msg/Twist message field 'linear' has the fields: x, y, z"),
    (dict(TOPIC, args=[{'name': 'v', 'type': 'float', 'field': 'linear'}]),
     "robot action 'drive': arg 'v' \\(float\\) cannot fill message field 'linear' of type "
     "'geometry_msgs/Vector3' \\(only primitive fields"),
    (dict(TOPIC, type='geometry_msgs/srv/Twist'), 'message type must look like'),
    (dict(ACTION, type='nav2_msgs/action/NavigateToPose'),
     "robot action 'fib': unknown action type 'nav2_msgs/action/NavigateToPose': package "
     "'nav2_msgs' has no Python interfaces installed"),
    (dict(ACTION, args=[{'name': 'n', 'type': 'str', 'field': 'order'}]),
     "robot action 'fib': arg 'n' \\(str\\) cannot fill goal field 'order' of type 'int32'"),
    (dict(ACTION, fields=['sequenc']),
     "robot action 'fib': fields: needs result field 'sequenc', but test_msgs/action/"
     'Fibonacci result fields are: sequence'),
    (dict(READ, fields=['pose.pose.positon.x']),
     "robot action 'odom': fields: needs message field 'pose.pose.positon.x', but "
     "nav_msgs/msg/Odometry message field 'pose.pose' has the fields: position, orientation"),
    (dict(READ, type='sensor_msgs/msg/NoSuchMessage'),
     "'sensor_msgs.msg' has no message 'NoSuchMessage'"),
])
def test_each_kind_fails_configure_naming_the_entry_and_field(ros, entry, message):
    _, node = ros
    with pytest.raises(ValueError, match=message):
        RobotFunctions(node, [entry])


@pytest.mark.parametrize('entry,message', [
    (dict(TOPIC, rate_hz=10.0), 'rate_hz needs a duration'),
    (dict(TOPIC, after={}), 'after: needs a duration'),
    (dict(TOPIC, duration='secs', args=[{'name': 'secs', 'type': 'float'}]),
     "duration arg 'secs' needs min"),
    (dict(TOPIC, service='/s'), 'name exactly one of service, topic, action, read'),
    (dict(READ, args=[{'name': 'a', 'type': 'int'}]), r"unknown key\(s\) \['args'\]"),
    (dict(SERVICE, args=[{'name': 'a', 'type': 'str', 'min': 1}]),
     'min must be a number, for an int or float arg'),
    (dict(SERVICE, args=[{'name': 'a', 'type': 'int', 'min': 5, 'max': 1}]),
     'min 5 is above max 1'),
    (dict(SERVICE, args=[{'name': 'a', 'type': 'int', 'choices': ['x']}]),
     'choices must be a non-empty list of strings, for a str arg'),
    (dict(SERVICE, confirm='yes'), 'confirm must be true or false'),
])
def test_entry_shape_errors(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_entries([entry], origin='functions.yaml')


def test_limits_and_confirm_reach_the_record(ros):
    _, node = ros
    entries = load_entries(os.path.join(REPO, 'test', 'config', 'functions_sim.yaml'))
    bridge = RobotFunctions(node, entries)
    try:
        drive = next(f for f in bridge.functions if f.name == 'drive')
        assert drive.limits == {'speed': {'minimum': -0.5, 'maximum': 0.5},
                                'seconds': {'minimum': 0.0, 'maximum': 6.0}}
        assert drive.schema['properties']['speed']['maximum'] == 0.5
        assert drive.timeout == 6.0 + 2.0 + 1.0  # the longest drive, its margin, one more
        fib = next(f for f in bridge.functions if f.name == 'fibonacci')
        # the field's int32 range and the YAML's min/max: the narrower one
        assert fib.schema['properties']['order'] == {
            'type': 'integer', 'description': 'how many numbers', 'minimum': 20, 'maximum': 46}
        assert not drive.confirm
        assert bridge.call('where_am_i') == 'no message yet on /odom'  # no robot runs here
    finally:
        bridge.destroy()
    confirmed = RobotFunctions(node, [dict(SERVICE, confirm=True)])
    assert confirmed.functions[0].confirm is True
    confirmed.destroy()


def test_example_configs_parse_and_resolve(ros):
    _, node = ros
    turtlebot = load_entries(os.path.join(REPO, 'config', 'functions_turtlebot.yaml'))
    assert [(e.name, e.kind) for e in turtlebot] == [
        ('drive', 'topic'), ('turn', 'topic'), ('where_am_i', 'read'), ('battery', 'read')]
    RobotFunctions(node, turtlebot).destroy()  # every type and path resolves here
    nav2 = load_entries(os.path.join(REPO, 'config', 'functions_nav2.yaml'))
    go_to = nav2[0]
    assert (go_to.kind, go_to.target, go_to.confirm) == ('action', '/navigate_to_pose', True)
    assert go_to.set == (('pose.header.frame_id', 'map'), ('pose.pose.orientation.w', 1.0))
    assert [a.request_field for a in go_to.args] == ['pose.pose.position.x',
                                                     'pose.pose.position.y']
    # nav2_msgs is not installed here: the node would refuse to configure, saying so
    with pytest.raises(ValueError, match="package 'nav2_msgs' has no Python interfaces"):
        RobotFunctions(node, nav2)
    RobotFunctions(node, nav2[1:]).destroy()

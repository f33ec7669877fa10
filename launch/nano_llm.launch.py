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
Start the nano_llm lifecycle node; it brings itself to active (its ``autostart`` parameter).

    ros2 launch ros2_nano_llm nano_llm.launch.py
    ros2 launch ros2_nano_llm nano_llm.launch.py model:=/models/Qwen2.5-0.5B-Instruct \
        namespace:=robot1 params_file:=/path/to/my_params.yaml

The params file gives every parameter (config/nano_llm.yaml by default). Each argument
below that names a parameter (``model``, ``api``, ``autostart``) defaults to '' meaning
"what the params file says"; given, it overrides the file. So ``api`` stays the file's
``auto`` unless you pass one, and nothing the launch sets differs from the file (``ros2 param
load /nano_llm config/nano_llm.yaml`` works on a launched node). The node's own
``autostart`` configures it and activates it once that configure succeeds, once; with
``autostart:=false`` it waits unconfigured for a lifecycle manager (or ``ros2 lifecycle set
/nano_llm configure``). ``web:=true`` also starts the operator's web page for this node
(``nano_llm_web`` on localhost:``web_port``; its log prints the control token).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare
from ros2_nano_llm.settings import APIS

# launch argument -> the parameter it overrides when given (empty: the params file's value)
OVERRIDES = ('model', 'api', 'autostart')


def overrides(context):
    """Return the parameters the launch arguments set: only the ones given (non-empty)."""
    given = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    values = {name: value for name, value in given.items() if value != ''}
    if 'autostart' in values:
        values['autostart'] = values['autostart'].lower() in ('true', '1', 'yes', 'on')
    return values


def nano_llm_node(context):
    """Return the node, with the params file and the arguments that were given."""
    image_topic = LaunchConfiguration('image_topic').perform(context)
    web = [web_node(context, image_topic)] if _is_true(context, 'web') else []
    return web + [LifecycleNode(
        package='ros2_nano_llm',
        executable='nano_llm_node',
        name=LaunchConfiguration('node_name'),
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[LaunchConfiguration('params_file'), overrides(context)],
        remappings=[
            ('~/input/image', image_topic),
            ('~/input/image/compressed', image_topic + '/compressed'),
        ],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )]


def _is_true(context, name):
    return LaunchConfiguration(name).perform(context).lower() in ('true', '1', 'yes', 'on')


def web_node(context, image_topic):
    """Return the web page's node for the chat node (``web:=true``)."""
    namespace = LaunchConfiguration('namespace').perform(context).strip('/')
    target = '/' + '/'.join(p for p in (namespace, LaunchConfiguration('node_name').perform(
        context)) if p)
    camera = image_topic if not image_topic.startswith('~') else target + image_topic[1:]
    return Node(package='ros2_nano_llm', executable='nano_llm_web', output='screen',
                name=target.strip('/').replace('/', '_') + '_web',
                parameters=[{'target': target, 'image_topic': camera,
                             'port': int(LaunchConfiguration('web_port').perform(context))}])


def generate_launch_description():
    """Return the launch description: the arguments and the node."""
    from_file = " (default '': what the params file says)"
    args = [
        DeclareLaunchArgument(
            'model', default_value='',
            description="model directory, .gguf file, hub id, or 'default' (embedded "
                        'SmolLM2)' + from_file),
        DeclareLaunchArgument(
            'api', default_value='',
            description='backend: ' + ', '.join(repr(api) for api in APIS) + from_file),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('ros2_nano_llm'), 'config', 'nano_llm.yaml']),
            description='YAML file with the node parameters'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('node_name', default_value='nano_llm', description='node name'),
        DeclareLaunchArgument(
            'autostart', default_value='',
            description='configure and activate the node once it is up' + from_file),
        DeclareLaunchArgument(
            'image_topic', default_value='~/input/image',
            description='camera topic to take frames from (its /compressed too)'),
        DeclareLaunchArgument('log_level', default_value='info', description='ROS log level'),
        DeclareLaunchArgument('web', default_value='false',
                              description="also start the operator's web page (nano_llm_web)"),
        DeclareLaunchArgument('web_port', default_value='8080',
                              description='TCP port of the web page (localhost only)'),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=nano_llm_node)])

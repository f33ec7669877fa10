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
Start the nano_llm lifecycle node and bring it to active.

    ros2 launch ros2_nano_llm nano_llm.launch.py
    ros2 launch ros2_nano_llm nano_llm.launch.py model:=/models/Qwen2.5-0.5B-Instruct \
        namespace:=robot1 params_file:=/path/to/my_params.yaml

The params file gives every parameter (config/nano_llm.yaml by default); ``model`` and
``api`` given here override it. With ``autostart:=true`` (the default) this launch file
asks the node to configure, and to activate once that first configure has succeeded,
through the standard lifecycle events. It does so once: later transitions (a lifecycle
manager's, or ``ros2 lifecycle set``) are left alone, so deactivate, cleanup, configure ends
in ``inactive``. With ``autostart:=false`` the node waits unconfigured for a lifecycle
manager (or ``ros2 lifecycle set /nano_llm configure``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction
from launch.actions import RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    """Return the launch description: arguments, the node and its lifecycle events."""
    args = [
        DeclareLaunchArgument(
            'model', default_value='default',
            description="model directory, .gguf file, hub id, or 'default' (embedded SmolLM2)"),
        DeclareLaunchArgument(
            'api', default_value='hf', description="backend: 'hf', 'mlc' or 'llama_cpp'"),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('ros2_nano_llm'), 'config', 'nano_llm.yaml']),
            description='YAML file with the node parameters'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('node_name', default_value='nano_llm', description='node name'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='configure and activate the node once it is up'),
        DeclareLaunchArgument(
            'image_topic', default_value='~/input/image',
            description='camera topic to take frames from (its /compressed too)'),
        DeclareLaunchArgument('log_level', default_value='info', description='ROS log level'),
    ]
    image_topic = LaunchConfiguration('image_topic')
    node = LifecycleNode(
        package='ros2_nano_llm',
        executable='nano_llm_node',
        name=LaunchConfiguration('node_name'),
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'model': ParameterValue(LaunchConfiguration('model'), value_type=str),
                'api': ParameterValue(LaunchConfiguration('api'), value_type=str),
                # the transitions come from the events below, not from the node itself
                'autostart': False,
            },
        ],
        remappings=[
            ('~/input/image', image_topic),
            ('~/input/image/compressed', [image_topic, '/compressed']),
        ],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )
    autostart = IfCondition(LaunchConfiguration('autostart'))
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_CONFIGURE),
        condition=autostart)

    def activate_if_configured(context):
        # The event is the end of the first configure: activate only if it succeeded.
        if context.locals.event.goal_state != 'inactive':
            return []
        return [EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_ACTIVATE))]

    # handle_once: the handler unregisters itself after the first configure ends (in
    # 'inactive' or, when it failed, 'unconfigured'), so autostart acts once and a later
    # configure from a lifecycle manager does not activate the node behind its back.
    activate_after_first_configure = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node, start_state='configuring',
            entities=[OpaqueFunction(function=activate_if_configured)], handle_once=True),
        condition=autostart)
    return LaunchDescription(args + [node, activate_after_first_configure, configure])

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
A camera and a vision chat: v4l2_camera publishes frames, nano_llm answers about them.

    ros2 launch ros2_nano_llm nano_llm_camera.launch.py \
        model:=/models/llava-interleave-qwen-0.5b-hf
    ros2 topic pub --once /nano_llm/input/text std_msgs/msg/String "{data: 'What do you see?'}"
    ros2 topic echo /nano_llm/output/reply

The newest frame joins the next prompt if it is younger than ``max_image_age`` (in the
params file); frames between prompts are never added to the chat, so a 30 Hz camera does
not grow it. Use ``start_camera:=false image_topic:=/my/camera/image_raw`` for a camera
that is already running.

Without the ``v4l2_camera`` package the node still starts (it answers text prompts and takes
frames from ``image_topic`` whenever something publishes them) and the log says how to get
a camera: ``sudo apt install ros-$ROS_DISTRO-v4l2-camera``, or any driver publishing
``sensor_msgs/Image`` with ``start_camera:=false image_topic:=<its topic>``.

The default model is a hub id: it loads where the Hugging Face hub is reachable (or the
model is in its cache). Offline, configure fails with a clear message and the node stays up
unconfigured; pass a local directory (``model:=/models/llava-interleave-qwen-0.5b-hf``).
"""

import os

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo
from launch.actions import OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

CAMERA_PACKAGE = 'v4l2_camera'
# arguments passed on to nano_llm.launch.py as they are
FORWARDED = ('model', 'api', 'params_file', 'namespace', 'autostart', 'image_topic')


def camera_or_hint(context):
    """Return the camera driver node, or a log line saying how to get one if it is missing."""
    if not IfCondition(LaunchConfiguration('start_camera')).evaluate(context):
        return []
    try:
        get_package_prefix(CAMERA_PACKAGE)
    except PackageNotFoundError:
        distro = os.environ.get('ROS_DISTRO') or '<distro>'
        topic = LaunchConfiguration('image_topic').perform(context)
        return [LogInfo(msg=(
            f'[nano_llm_camera] the {CAMERA_PACKAGE} package is not installed, so no camera '
            f'is started; nano_llm runs without one and takes frames from {topic} whenever '
            f'something publishes them. To get a camera: sudo apt install '
            f'ros-{distro}-v4l2-camera, or start any camera driver and pass '
            f'start_camera:=false image_topic:=<its image topic>'))]
    return [Node(
        package=CAMERA_PACKAGE,
        executable='v4l2_camera_node',
        name='camera',
        output='screen',
        parameters=[{'video_device': LaunchConfiguration('video_device'),
                     'image_size': [640, 480]}],
        remappings=[('image_raw', LaunchConfiguration('image_topic'))],
    )]


def generate_launch_description():
    """Return the launch description: the camera driver and the nano_llm node."""
    share = get_package_share_directory('ros2_nano_llm')
    args = [
        DeclareLaunchArgument(
            'model', default_value='llava-hf/llava-interleave-qwen-0.5b-hf',
            description='a vision-language model (LLaVA family): directory, or hub id (needs '
                        'network or the hub cache)'),
        DeclareLaunchArgument(
            'api', default_value='',
            description="backend (default '': what the params file says)"),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'nano_llm.yaml'),
            description='YAML file with the node parameters'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument(
            'autostart', default_value='',
            description="configure and activate the node once it is up (default '': what "
                        'the params file says)'),
        DeclareLaunchArgument(
            'image_topic', default_value='/image_raw', description='camera image topic'),
        DeclareLaunchArgument(
            'start_camera', default_value='true',
            description='start v4l2_camera_node (the v4l2_camera package) on video_device'),
        DeclareLaunchArgument(
            'video_device', default_value='/dev/video0', description='V4L2 device'),
    ]
    camera = OpaqueFunction(function=camera_or_hint)
    chat = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'nano_llm.launch.py')),
        launch_arguments=[(name, LaunchConfiguration(name)) for name in FORWARDED],
    )
    return LaunchDescription(args + [camera, chat])

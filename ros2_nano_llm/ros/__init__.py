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
The ROS 2 side of ros2_nano_llm: the only package that imports rclpy.

- ``node``: ``ChatLifecycleNode`` and ``main()`` (the ``nano_llm_node`` executable)
- ``params``: the settings table (``..settings``) declared with descriptors -> ``NodeConfig``
- ``interfaces``: topic and service names, QoS, msg <-> chat conversions
- ``worker``: the chat session and its work on the model's worker thread (no rclpy)
- ``robot``: robot functions (``functions_file``): services, topics, actions and readers
  as bot functions (``ros_bridge`` keeps the older service-only names)
- ``sim_robot``: the simulated robot (``nano_llm_sim_robot``)
- ``persistence``: the chat's ``history_file``: restored at configure, saved after changes
"""

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
The operator's web page (``nano_llm_web``): one page for one chat node, over its ROS interfaces.

``config`` holds the web node's parameters, ``limits`` the size and rate limits of what
browsers send, ``frames`` turns camera frames into small JPEGs, ``bridge`` is the rclpy side
(the chat node's topics, services and actions), ``hub`` keeps what every page shows and sends
it to each, ``server`` is the aiohttp application (HTTP, websockets, the control token),
``app`` is the executable's ``main()``. The page itself (``static/``) is plain HTML/JS.
"""

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
What differs between the ROS 2 distributions the node runs on (Kilted, Jazzy).

rclpy 8 (Kilted) made ``rclpy.init()`` a context manager; rclpy 7.1 (Jazzy) returns None.
"""

import contextlib
from typing import Iterator, List, Optional

import rclpy


@contextlib.contextmanager
def initialized(args: Optional[List[str]] = None, signal_handlers: bool = True
                ) -> Iterator[None]:
    """
    Initialise rclpy's default context for the block and shut it down after, on any rclpy.

    ``signal_handlers=False`` keeps rclpy's SIGINT/SIGTERM handlers out (they shut the
    context down at once): the caller's own handler decides when the context may go.
    """
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.ALL if signal_handlers
               else SignalHandlerOptions.NO)
    try:
        yield
    finally:
        rclpy.try_shutdown()

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
"""Nodes of a private rclpy context, spun by a MultiThreadedExecutor in a thread (tests)."""

from contextlib import contextmanager
import os
import random
import threading
from typing import Iterator, List

import rclpy
from rclpy.executors import MultiThreadedExecutor


@contextmanager
def spun_nodes(*names: str) -> Iterator[List[rclpy.node.Node]]:
    """Yield one node per name, spun in a thread; destroy them and the context after."""
    domain_id = int(os.environ.get('ROS_DOMAIN_ID') or random.randint(1, 100))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    nodes = [rclpy.create_node(name, context=context) for name in names]
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield nodes
    finally:
        executor.shutdown(timeout_sec=5)
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
        spinner.join(5)

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
"""The test side of the sim robot: publishes /cmd_vel, keeps /odom, /battery_state, events."""

import json
import math
import threading
import time

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
import rclpy
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from ros2_nano_llm.ros.sim_robot import EVENTS_QOS
from sensor_msgs.msg import BatteryState
from std_msgs.msg import String
from test_msgs.action import Fibonacci

SEND_HZ = 20.0


class SimClient:
    """The test side: publishes /cmd_vel, keeps /odom, /battery_state, events; a goal client."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sim_robot_test', context=self.context)
        self.cmd = self.node.create_publisher(Twist, '/cmd_vel', 10)
        self.odom = []
        self.battery = []
        self.events = []
        self._cond = threading.Condition()
        self.node.create_subscription(Odometry, '/odom', self._keep(self.odom), 50)
        self.node.create_subscription(BatteryState, '/battery_state', self._keep(self.battery),
                                      10)
        self.node.create_subscription(String, '/sim_robot/events', self._keep_event, EVENTS_QOS)
        self.fibonacci = ActionClient(self.node, Fibonacci, '/fibonacci')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _keep(self, store):
        def callback(msg):
            with self._cond:
                store.append(msg)
                self._cond.notify_all()
        return callback

    def _keep_event(self, msg):
        self._keep(self.events)(json.loads(msg.data))

    def wait(self, predicate, timeout=20.0, what='condition'):
        """Wait until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), f'timed out waiting for {what}'

    def close(self):
        """Stop spinning and leave the context."""
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(5.0)

    def pose(self):
        """Return (x, y, yaw) of the latest odometry."""
        with self._cond:
            msg = self.odom[-1]
        q = msg.pose.pose.orientation
        return (msg.pose.pose.position.x, msg.pose.pose.position.y,
                2.0 * math.atan2(q.z, q.w))

    def drive(self, linear, angular, seconds, stop=True):
        """Publish the Twist at SEND_HZ for ``seconds``, then the zero Twist; return the span."""
        msg = Twist()
        msg.linear.x, msg.angular.z = float(linear), float(angular)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            self.cmd.publish(msg)
            time.sleep(1.0 / SEND_HZ)
        if stop:
            self.cmd.publish(Twist())
        return time.monotonic() - start

    def settled(self):
        """Wait until odometry reports zero velocity twice in a row; return the pose."""
        def still():
            return len(self.odom) > 2 and all(
                m.twist.twist.linear.x == 0.0 and m.twist.twist.angular.z == 0.0
                for m in self.odom[-2:])
        time.sleep(0.1)
        self.wait(still, what='the robot to stop')
        return self.pose()

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
A simulated differential-drive robot: what the robot-function demo and tests drive.

``nano_llm_sim_robot`` (``ros2 run ros2_nano_llm nano_llm_sim_robot``) takes
``geometry_msgs/msg/Twist`` on ``/cmd_vel`` and publishes ``nav_msgs/msg/Odometry`` on
``/odom`` (frames ``odom`` -> ``base_link``) and ``sensor_msgs/msg/BatteryState`` on
``/battery_state``. Like a real base it holds the last command for ``watchdog_s`` only, so it
stops when commands stop. It serves ``test_msgs/action/Fibonacci`` on ``/fibonacci``, one
feedback per ``step_period_s``, with cancel. Every command change, watchdog stop, goal and
cancel is logged and published as JSON on ``~/events`` (transient local, so a test that
subscribes late still reads what reached the robot).
"""

import dataclasses
import json
import math
import threading
import time
from typing import Any, List, Optional

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from ros2_nano_llm.ros.run import run
from sensor_msgs.msg import BatteryState
from std_msgs.msg import String
from test_msgs.action import Fibonacci

EVENTS_QOS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
MAX_ORDER = 46  # the 47th Fibonacci number does not fit the action's int32


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """The sim robot's parameters (names as declared on the node)."""

    cmd_vel_topic: str = '/cmd_vel'
    odom_topic: str = '/odom'
    battery_topic: str = '/battery_state'
    action_name: str = '/fibonacci'
    events_topic: str = '~/events'
    odom_frame: str = 'odom'
    base_frame: str = 'base_link'
    rate_hz: float = 50.0
    battery_rate_hz: float = 1.0
    watchdog_s: float = 0.5
    step_period_s: float = 0.2
    max_linear: float = 1.0
    max_angular: float = 2.0
    battery_start: float = 1.0
    battery_drain_per_m: float = 0.01

    def check(self) -> None:
        """Raise ValueError naming the first parameter out of range."""
        for name in ('rate_hz', 'battery_rate_hz', 'watchdog_s', 'step_period_s',
                     'max_linear', 'max_angular'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a positive number, not {value}')
        if not 0.0 <= self.battery_start <= 1.0:
            raise ValueError(f'battery_start must be in [0, 1], not {self.battery_start}')
        if not (math.isfinite(self.battery_drain_per_m) and self.battery_drain_per_m >= 0.0):
            raise ValueError(f'battery_drain_per_m must be >= 0, not {self.battery_drain_per_m}')


def declare_config(node: Node) -> SimConfig:
    """Declare one parameter per SimConfig field (its default) and return the frozen values."""
    values = {field.name: node.declare_parameter(field.name, field.default).value
              for field in dataclasses.fields(SimConfig)}
    config = SimConfig(**values)
    config.check()
    return config


@dataclasses.dataclass
class Pose2D:
    """Planar pose and the velocity the base is executing."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    linear: float = 0.0
    angular: float = 0.0


def integrate(pose: Pose2D, dt: float) -> float:
    """Move ``pose`` by its velocity for ``dt`` seconds (exact arc); return the distance."""
    v, w = pose.linear, pose.angular
    if abs(w) < 1e-9:
        pose.x += v * math.cos(pose.yaw) * dt
        pose.y += v * math.sin(pose.yaw) * dt
    else:
        yaw = pose.yaw + w * dt
        pose.x += v / w * (math.sin(yaw) - math.sin(pose.yaw))
        pose.y -= v / w * (math.cos(yaw) - math.cos(pose.yaw))
    pose.yaw = math.atan2(math.sin(pose.yaw + w * dt), math.cos(pose.yaw + w * dt))
    return abs(v) * dt


class SimRobot(Node):
    """The kinematic base, its battery and its Fibonacci action server."""

    def __init__(self, name: str = 'sim_robot'):
        super().__init__(name)
        self.config = declare_config(self)
        cfg = self.config
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.finalized = Future()  # never done: the sim runs until a signal (run.run)
        self._pose = Pose2D()
        self._battery = cfg.battery_start
        self._updated = time.monotonic()   # the pose is integrated up to this instant
        self._hold_until = self._updated   # the last command runs until then (watchdog)
        self._events = self.create_publisher(String, cfg.events_topic, EVENTS_QOS)
        self._odom = self.create_publisher(Odometry, cfg.odom_topic, 10)
        self._battery_pub = self.create_publisher(BatteryState, cfg.battery_topic, 10)
        base = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Twist, cfg.cmd_vel_topic, self._on_cmd_vel, 10,
                                 callback_group=base)
        self.create_timer(1.0 / cfg.rate_hz, self._tick, callback_group=base)
        self.create_timer(1.0 / cfg.battery_rate_hz, self._publish_battery, callback_group=base)
        self._action = ActionServer(
            self, Fibonacci, cfg.action_name, execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup())
        self.get_logger().info(
            f'sim robot ready: {cfg.cmd_vel_topic} -> {cfg.odom_topic}, {cfg.battery_topic}, '
            f'action {cfg.action_name}, watchdog {cfg.watchdog_s} s')

    def release(self) -> None:
        """End running goals (they abort) before the executor goes (``run.run`` calls it)."""
        self._stopping.set()

    def event(self, kind: str, **fields: Any) -> None:
        """Log one event and publish it as JSON on the events topic."""
        text = json.dumps({'event': kind, **fields}, sort_keys=True)
        self.get_logger().info(text)
        self._events.publish(String(data=text))

    # --- the base ---

    def _advance(self, now: float) -> None:
        # Integrate up to now; a command older than the watchdog moves the base only until its
        # deadline, so the distance does not depend on when the timer happens to fire.
        pose = self._pose
        moving = pose.linear != 0.0 or pose.angular != 0.0
        held = min(now, self._hold_until) - self._updated
        if moving and held > 0.0:
            distance = integrate(pose, held)
            self._battery = max(0.0, self._battery - distance * self.config.battery_drain_per_m)
        if moving and now >= self._hold_until:
            pose.linear = pose.angular = 0.0
            self.event('watchdog', after_s=self.config.watchdog_s)
        self._updated = now

    def _on_cmd_vel(self, msg: Twist) -> None:
        linear, angular = msg.linear.x, msg.angular.z
        if not (math.isfinite(linear) and math.isfinite(angular)):
            self.get_logger().warning(f'ignored a non-finite cmd_vel ({linear}, {angular}): '
                                      'stopping')
            linear = angular = 0.0
        linear = max(-self.config.max_linear, min(self.config.max_linear, linear))
        angular = max(-self.config.max_angular, min(self.config.max_angular, angular))
        now = time.monotonic()
        with self._lock:
            self._advance(now)
            changed = (linear, angular) != (self._pose.linear, self._pose.angular)
            self._pose.linear, self._pose.angular = linear, angular
            self._hold_until = now + self.config.watchdog_s
        if changed:
            self.event('cmd_vel', linear_x=linear, angular_z=angular)

    def _tick(self) -> None:
        with self._lock:
            self._advance(time.monotonic())
            pose = dataclasses.replace(self._pose)
        msg = Odometry()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.config.odom_frame
        msg.child_frame_id = self.config.base_frame
        msg.pose.pose.position.x, msg.pose.pose.position.y = pose.x, pose.y
        msg.pose.pose.orientation.z = math.sin(pose.yaw / 2.0)
        msg.pose.pose.orientation.w = math.cos(pose.yaw / 2.0)
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = pose.linear, pose.angular
        self._odom.publish(msg)

    def _publish_battery(self) -> None:
        with self._lock:
            level, moving = self._battery, self._pose.linear != 0.0
        msg = BatteryState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.percentage = float(level)
        msg.voltage = float(22.0 + 3.2 * level)  # a 6-cell pack: 22.0 V empty, 25.2 V full
        msg.present = True
        msg.power_supply_status = (BatteryState.POWER_SUPPLY_STATUS_DISCHARGING if moving
                                   else BatteryState.POWER_SUPPLY_STATUS_NOT_CHARGING)
        msg.power_supply_technology = BatteryState.POWER_SUPPLY_TECHNOLOGY_LION
        self._battery_pub.publish(msg)

    # --- the action ---

    def _on_goal(self, goal: Fibonacci.Goal) -> GoalResponse:
        if not 0 <= goal.order <= MAX_ORDER:
            self.event('goal_rejected', order=goal.order, reason=f'order not in 0..{MAX_ORDER}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        self.event('cancel_request', id=bytes(goal_handle.goal_id.uuid).hex())
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> Fibonacci.Result:
        goal_id = bytes(goal_handle.goal_id.uuid).hex()
        order = goal_handle.request.order
        self.event('goal', id=goal_id, order=order)
        sequence: List[int] = [0, 1][:order + 1]
        for _ in range(order - 1):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                self.event('canceled', id=goal_id, steps=len(sequence))
                return Fibonacci.Result(sequence=sequence)
            sequence.append(sequence[-1] + sequence[-2])
            goal_handle.publish_feedback(Fibonacci.Feedback(sequence=sequence))
            if self._stopping.wait(self.config.step_period_s):
                # shutting down (the context is still up: main() stops the sim first)
                goal_handle.abort()
                self.get_logger().info(f'goal {goal_id} ended by shutdown')
                return Fibonacci.Result(sequence=sequence)
        goal_handle.succeed()
        self.event('succeeded', id=goal_id, sequence=sequence)
        return Fibonacci.Result(sequence=sequence)


def main(args: Optional[List[str]] = None) -> int:
    """Run the sim robot until Ctrl-C or SIGTERM; return the exit code (1: bad parameters)."""
    # as the node: the sim stops its goals before its context goes, so a goal never
    # publishes into a context a signal already shut down
    return run(SimRobot, args, logger='sim_robot')


if __name__ == '__main__':
    main()

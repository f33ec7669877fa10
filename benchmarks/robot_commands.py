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
Robot commands for ``function_calls.py --mode robot``: robot-like bot functions, two sets.

The functions are what a small mobile robot with a gripper offers (motions with argument
limits, state readers, named places). Each request is ``(text, function, arguments)``: the
call a single-action request needs; ``arguments`` is one dict, or a list of the dicts that
are all right. ``TUNING`` is the set the function docs and the choice method were tuned
on; ``HELD_OUT`` was written apart and is only measured (the issue's "too dark" request
is its first).
"""

from typing import Dict, List

from ros2_nano_llm import FunctionRegistry

# robot function -> the calls it received (the benchmark reads them)
RECEIVED: List[tuple] = []
PLACES = ['kitchen', 'charging dock', 'living room', 'front door']
# functions that move the robot: one request should move it once
MOTIONS = ('move', 'drive', 'turn', 'go_to', 'go_to_pose', 'set_gripper')


def _received(name: str, result: str = 'done', **args) -> str:
    RECEIVED.append((name, args))
    return result


def move(distance: float) -> str:
    """Drive straight ahead by a distance in metres (negative: backwards)."""
    return _received('move', distance=distance)


def drive(speed: float, duration: float) -> str:
    """Drive at a speed in m/s (negative: backwards) for a duration in seconds."""
    return _received('drive', speed=speed, duration=duration)


def turn(angle: float) -> str:
    """Turn in place by an angle in degrees (positive: left, negative: right)."""
    return _received('turn', angle=angle)


def stop() -> str:
    """Stop all motion now."""
    return _received('stop', 'stopped')


def set_headlights(on: bool) -> str:
    """Switch the headlights on (True) or off (False)."""
    return _received('set_headlights', f"headlights {'on' if on else 'off'}", on=on)


def get_position() -> str:
    """Read the odometry: where the robot is and which way it faces."""
    return _received('get_position', 'x 1.00 m, y 0.50 m, heading 0 degrees (0.1 s ago)')


def get_battery() -> str:
    """Read the battery level in percent."""
    return _received('get_battery', 'battery 76 % (0.4 s ago)')


def go_to(place: str) -> str:
    """Navigate to a named place."""
    return _received('go_to', f'arrived at the {place}', place=place)


def go_to_pose(x: float, y: float) -> str:
    """Navigate to the point x, y (metres) on the map."""
    return _received('go_to_pose', f'arrived at x {x}, y {y}', x=x, y=y)


def set_gripper(open: bool) -> str:  # noqa: A002 - the argument name the model reads
    """Open (True) or close (False) the gripper."""
    return _received('set_gripper', f"gripper {'open' if open else 'closed'}", open=open)


FUNCTIONS = (move, drive, turn, stop, set_headlights, get_position, get_battery, go_to,
             go_to_pose, set_gripper)
# what the robot's driver allows: into the schema, so into the grammar, and checked at bind
LIMITS: Dict[str, Dict[str, Dict]] = {
    'move': {'distance': {'minimum': -3.0, 'maximum': 3.0}},
    'drive': {'speed': {'minimum': -0.5, 'maximum': 0.5},
              'duration': {'minimum': 0.0, 'maximum': 10.0}},
    'turn': {'angle': {'minimum': -180.0, 'maximum': 180.0}},
    'go_to': {'place': {'enum': PLACES}},
    'go_to_pose': {'x': {'minimum': -10.0, 'maximum': 10.0},
                   'y': {'minimum': -10.0, 'maximum': 10.0}},
}


def robot_functions(limits: bool = True) -> list:
    """Return the robot's bot function records, with their argument limits or without."""
    registry = FunctionRegistry()
    return [registry.register(f, limits=LIMITS.get(f.__name__, {}) if limits else {},
                              testable=False) for f in FUNCTIONS]


TUNING = [
    ('Drive forward one metre.', 'move', {'distance': 1.0}),
    ('Back up half a metre.', 'move', {'distance': -0.5}),
    ('Move ahead 2 meters.', 'move', {'distance': 2.0}),
    ('Drive forward at 0.2 m/s for 5 seconds.', 'drive', {'speed': 0.2, 'duration': 5.0}),
    ('Go backwards slowly, 0.1 metres per second, for 3 seconds.', 'drive',
     {'speed': -0.1, 'duration': 3.0}),
    ('Turn left by 90 degrees.', 'turn', {'angle': 90.0}),
    ('Turn right 45 degrees.', 'turn', {'angle': -45.0}),
    ('Stop!', 'stop', {}),
    ('Halt right now.', 'stop', {}),
    ('Turn on the headlights.', 'set_headlights', {'on': True}),
    ('Switch the lights off.', 'set_headlights', {'on': False}),
    ('Where are you?', 'get_position', {}),
    ('What is your position?', 'get_position', {}),
    ('How much battery do you have left?', 'get_battery', {}),
    ('Is your battery low?', 'get_battery', {}),
    ('Go to the kitchen.', 'go_to', {'place': 'kitchen'}),
    ('Drive to the charging dock.', 'go_to', {'place': 'charging dock'}),
    ('Go to x 2, y 3 on the map.', 'go_to_pose', {'x': 2.0, 'y': 3.0}),
    ('Open the gripper.', 'set_gripper', {'open': True}),
    ('Close the gripper.', 'set_gripper', {'open': False}),
]
HELD_OUT = [
    ('It is too dark to see, turn the lights on.', 'set_headlights', {'on': True}),
    ('Please roll forward 30 centimetres.', 'move', {'distance': 0.3}),
    ('Rotate 30 degrees to the left.', 'turn', {'angle': 30.0}),
    ("Freeze, don't move.", 'stop', {}),
    ('Report your current location.', 'get_position', {}),
    ("What's your charge level?", 'get_battery', {}),
    ('Head over to the front door.', 'go_to', {'place': 'front door'}),
    ('Navigate to the point (1.5, -2).', 'go_to_pose', {'x': 1.5, 'y': -2.0}),
    ('Let go of the object.', 'set_gripper', {'open': True}),
    ('Grab it.', 'set_gripper', {'open': False}),
    ('Reverse at 0.3 m/s for two seconds.', 'drive', {'speed': -0.3, 'duration': 2.0}),
    ('Kill the headlights.', 'set_headlights', {'on': False}),
]
SETS = {'tuning': TUNING, 'held_out': HELD_OUT}

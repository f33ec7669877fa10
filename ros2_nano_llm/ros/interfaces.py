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
"""What the node says on the wire: topic and service names, QoS, and msg <-> chat conversions."""

from typing import Any, Dict, List, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

from ..msg import ChatEntry, FunctionCall, StreamToken
from ..vision.convert import check_frame_size, to_rgb_array

# Private names (~/ = the node's own namespace), remappable as usual.
INPUT_TEXT = '~/input/text'
INPUT_IMAGE = '~/input/image'
INPUT_IMAGE_COMPRESSED = '~/input/image/compressed'
OUTPUT_TOKENS = '~/output/tokens'
OUTPUT_STREAM = '~/output/stream'
OUTPUT_REPLY = '~/output/reply'
OUTPUT_CALLS = '~/output/calls'
PENDING_CALLS = '~/output/pending_calls'
APPROVE_CALL = '~/approve_call'
GENERATE = '~/generate'
RESET = '~/reset'
STOP = '~/stop'
GET_HISTORY = '~/get_history'
CALL_FUNCTION = '~/call_function'
LIST_FUNCTIONS = '~/list_functions'
DIAGNOSTICS = '/diagnostics'

# Prompts and replies must not be lost; token pieces come fast, so keep many in flight.
PROMPT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)
STREAM_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                        reliability=ReliabilityPolicy.RELIABLE)
REPLY_QOS = PROMPT_QOS
CALLS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE)
# Calls waiting for approval: reliable and transient local, so an operator's tool that starts
# late still sees the recent ones (each carries its deadline).
PENDING_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Requests (the services and the action's goal, cancel and result services): rclpy's
# default keeps the last 10, so a burst beyond that was dropped unanswered. Each request is
# answered quickly (a refusal at once), so the queue needs room for one burst: every prompt
# the busy policy may hold waiting (max_queue, taken at configure) plus REQUEST_BURST more.
REQUEST_BURST = 200


def request_qos(max_queue: int) -> QoSProfile:
    """Return the QoS of the node's request queues, sized for ``max_queue`` and a burst."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(max_queue) + REQUEST_BURST,
                      reliability=ReliabilityPolicy.RELIABLE)


# Camera frames: best effort, newest only (also matches reliable publishers).
IMAGE_QOS = qos_profile_sensor_data
DIAGNOSTICS_QOS = 10

try:  # the ROS 2 cv_bridge when the system has it; our converter otherwise
    from cv_bridge import CvBridge
    _BRIDGE: Optional[Any] = CvBridge()
except Exception:  # noqa: BLE001 - missing, or a broken ROS 1 port from PyPI
    _BRIDGE = None


def frame_to_rgb(msg: Any, max_size: Optional[int] = None) -> np.ndarray:
    """
    Return a sensor_msgs/Image or CompressedImage as an (H, W, 3) uint8 RGB array.

    A frame wider or taller than ``max_size`` pixels is refused before it is decoded.
    Raises ValueError saying what is wrong (too large, a wrong ``step``, an unknown
    encoding, a corrupt JPEG, ...).
    """
    if max_size:
        check_frame_size(msg, max_size)
    if _BRIDGE is not None and hasattr(msg, 'encoding'):
        try:
            return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding='rgb8'))
        except Exception:  # noqa: BLE001 - ours gives the clear error, or reads it after all
            pass
    return to_rgb_array(msg)


def stream_token(stamp: Time, turn_id: int, index: int, text: str,
                 eos: bool = False) -> StreamToken:
    """Return one ``~/output/stream`` message."""
    msg = StreamToken(turn_id=turn_id, token_index=index, text=text, eos=eos)
    msg.header.stamp = stamp
    return msg


def function_call(stamp: Time, turn_id: int, call: Any, event: str = 'ended') -> FunctionCall:
    """
    Return one ``~/output/calls`` message.

    ``call`` is a ``functions.calls.FunctionCall`` record (a call of a reply, as the
    Generate result lists it: ``event`` 'ended') or a ``functions.guard.CallEvent`` (pass
    its ``event``): both carry the message's fields by name.
    """
    msg = FunctionCall(name=call.name, args_json=call.args_json, result=str(call.result),
                       success=bool(call.success), turn_id=turn_id, event=event,
                       call_id=call.call_id)
    msg.header.stamp = stamp
    return msg


def call_event(stamp: Time, event: Any) -> FunctionCall:
    """Return the ``~/output/calls`` message of a ``functions.guard.CallEvent``."""
    return function_call(stamp, event.turn_id, event, event.event)


def chat_entries(history: Any) -> List[ChatEntry]:
    """Return the entries of a ChatHistory as ChatEntry messages (call under ``history.lock``)."""
    cached = history.cached_tokens()
    keys = history.kv_cache.keys
    entries = []
    for message in history.messages:
        # positions are in the table of the chat's last render; the newest reply is counted
        # by its own tokens until the next turn renders it with the template around it
        span = history.positions.get(message)
        rendered = span is not None and span.length > 0
        count = span.length if rendered else len(message.tokens or ())
        if rendered:
            in_cache = span.end <= cached
        else:
            # the newest reply: cached when the cache ends with its tokens (the model
            # computed every one of them; a reply cut by length lacks its last one)
            tokens = [int(t) for t in message.tokens or ()]
            in_cache = bool(tokens) and list(keys[-len(tokens):]) == tokens
        entries.append(ChatEntry(
            role=message.role, type=message.type, text=message.describe(),
            num_tokens=int(count), cached=bool(in_cache)))
    return entries


def diagnostics(stamp: Time, name: str, hardware_id: str, level: bytes, message: str,
                values: Dict[str, Any]) -> DiagnosticArray:
    """Return a one-status DiagnosticArray with ``values`` as key/value strings."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)

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
The web node's ROS side: the chat node's topics, services and ``~/generate``, nothing else.

``ChatBridge`` subscribes to the target's ``~/output/stream``, ``~/output/reply``,
``~/output/calls``, ``~/output/pending_calls``, ``~/input/text``, its camera topic and
``/diagnostics``, and turns each message into a plain dict event handed to ``sink`` (from the
executor's threads; the server moves it onto its event loop). Its ``*_async`` methods are
called from the server's event loop: each returns an asyncio future for the ROS answer,
bounded by ``service_timeout``.
"""

import asyncio
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import GetState
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from . import config as web_config
from .frames import small_jpeg
from .. import interfaces as ifc
from ...action import Generate
from ...msg import FunctionCall, PendingCall, StreamToken
from ...srv import ApproveCall, GetHistory

Event = Dict[str, Any]
FRAME_LOG_PERIOD_S = 10.0


def _stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class ChatBridge(Node):
    """The web node: talks to one chat node (``target``) over its ROS interfaces only."""

    def __init__(self, node_name: str = 'nano_llm_web'):
        super().__init__(node_name)
        for name, (default, _) in web_config.PARAMETERS.items():
            self.declare_parameter(name, default)
        self.config = web_config.read(lambda name: self.get_parameter(name).value)
        self.sink: Callable[[Event], None] = lambda event: None
        self.frame: Optional[bytes] = None   # the latest camera frame, a small JPEG
        self.frame_seq = 0
        self._frame_lock = threading.Lock()
        self._frame_at = -float('inf')
        self._frame_error_at = -float('inf')
        t, group = self.config.target, ReentrantCallbackGroup()
        subscriptions = (
            (StreamToken, ifc.OUTPUT_STREAM, self._on_stream, ifc.STREAM_QOS),
            (String, ifc.OUTPUT_REPLY, self._on_reply, ifc.REPLY_QOS),
            (String, ifc.INPUT_TEXT, self._on_prompt, ifc.PROMPT_QOS),
            (FunctionCall, ifc.OUTPUT_CALLS, self._on_call, ifc.CALLS_QOS),
            (PendingCall, ifc.PENDING_CALLS, self._on_pending, ifc.CALLS_QOS),
        )
        for msg_type, name, callback, qos in subscriptions:
            self.create_subscription(msg_type, t + name[1:], callback, qos,
                                     callback_group=group)
        camera = self.config.camera_topic
        self.create_subscription(Image, camera, self._on_frame, ifc.IMAGE_QOS,
                                 callback_group=group)
        self.create_subscription(CompressedImage, camera + '/compressed', self._on_frame,
                                 ifc.IMAGE_QOS, callback_group=group)
        self.create_subscription(DiagnosticArray, ifc.DIAGNOSTICS, self._on_diagnostics,
                                 ifc.DIAGNOSTICS_QOS, callback_group=group)
        self.clients_by_name = {
            'get_state': self.create_client(GetState, f'{t}/get_state', callback_group=group),
            'get_history': self.create_client(GetHistory, t + ifc.GET_HISTORY[1:],
                                              callback_group=group),
            'reset': self.create_client(Trigger, t + ifc.RESET[1:], callback_group=group),
            'stop': self.create_client(Trigger, t + ifc.STOP[1:], callback_group=group),
            'approve_call': self.create_client(ApproveCall, t + ifc.APPROVE_CALL[1:],
                                               callback_group=group),
        }
        self.generate = ActionClient(self, Generate, t + ifc.GENERATE[1:],
                                     callback_group=group)

    # ---- what the chat node publishes -> events ----------------------------------------
    def _on_stream(self, msg: Any) -> None:
        self.sink({'type': 'token', 'turn_id': msg.turn_id, 'index': msg.token_index,
                   'text': msg.text, 'eos': msg.eos, 'stamp': _stamp_s(msg.header.stamp)})

    def _on_reply(self, msg: Any) -> None:
        self.sink({'type': 'reply', 'text': msg.data})

    def _on_prompt(self, msg: Any) -> None:
        self.sink({'type': 'prompt', 'text': msg.data, 'source': 'topic'})

    def _on_call(self, msg: Any) -> None:
        self.sink({'type': 'call', 'event': msg.event or 'ended', 'call_id': msg.call_id,
                   'name': msg.name, 'args_json': msg.args_json, 'result': msg.result,
                   'success': msg.success, 'turn_id': msg.turn_id})

    def _on_pending(self, msg: Any) -> None:
        self.sink({'type': 'pending', 'call_id': msg.call_id, 'name': msg.name,
                   'args_json': msg.args_json, 'turn_id': msg.turn_id,
                   'deadline': _stamp_s(msg.deadline)})

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            # the chat node names its status 'nano_llm: /its/name'
            if status.name.split(': ', 1)[-1] == self.config.target:
                self.sink({'type': 'diagnostics', 'message': status.message,
                           'values': {kv.key: kv.value for kv in status.values}})

    def _on_frame(self, msg: Any) -> None:
        now = time.monotonic()
        with self._frame_lock:
            if now - self._frame_at < self.config.frame_period:
                return  # the pages get a few frames a second; the others are not decoded
            self._frame_at = now
        try:
            jpeg, width, height = small_jpeg(msg, self.config.frame_side,
                                             self.config.max_frame_size)
        except ValueError as error:
            if now - self._frame_error_at > FRAME_LOG_PERIOD_S:
                self._frame_error_at = now
                self.get_logger().warning(f'camera frame not shown: {error}')
            return
        with self._frame_lock:
            self.frame, self.frame_seq = jpeg, self.frame_seq + 1
            seq = self.frame_seq
        self.sink({'type': 'frame', 'seq': seq, 'width': width, 'height': height})

    # ---- calls from the server's event loop --------------------------------------------
    async def call(self, name: str, request: Any = None) -> Any:
        """Call one of the chat node's services; raise RuntimeError saying why it failed."""
        client = self.clients_by_name[name]
        if not client.service_is_ready():
            raise RuntimeError(f'{client.srv_name} is not offered (is the chat node running?)')
        future = client.call_async(request if request is not None else client.srv_type.Request())
        try:
            return await asyncio.wait_for(wrap(future), self.config.service_timeout)
        except asyncio.TimeoutError:
            client.remove_pending_request(future)
            raise RuntimeError(f'{client.srv_name} did not answer in '
                               f'{self.config.service_timeout:g} s') from None

    def offers(self, name: str) -> bool:
        """Return True when the chat node serves ``name`` (a key of ``clients_by_name``)."""
        return self.clients_by_name[name].service_is_ready()

    async def state(self) -> str:
        """Return the chat node's lifecycle state label, or 'unreachable'."""
        try:
            return (await self.call('get_state')).current_state.label
        except RuntimeError:
            return 'unreachable'

    async def history(self) -> Event:
        """Return the chat as a 'history' event (from ``~/get_history``)."""
        response = await self.call('get_history')
        if not response.success:
            raise RuntimeError(f'~/get_history: {response.message}')
        return {'type': 'history', 'cache_tokens': response.cache_tokens,
                'context_len': response.context_len,
                'entries': [{'role': e.role, 'type': e.type, 'text': e.text,
                             'num_tokens': e.num_tokens, 'cached': e.cached}
                            for e in response.entries]}

    async def trigger(self, name: str) -> Tuple[bool, str]:
        """Call ``~/reset`` or ``~/stop``; return ``(success, message)``."""
        response = await self.call(name)
        return response.success, response.message

    async def decide(self, call_id: str, approve: bool, reason: str) -> Tuple[bool, str]:
        """Approve or deny a pending call through ``~/approve_call``."""
        response = await self.call('approve_call', ApproveCall.Request(
            call_id=call_id, approve=approve, reason=reason))
        return response.success, response.message

    async def send_prompt(self, text: str) -> Any:
        """Send one ``~/generate`` goal; return its goal handle (raise RuntimeError if refused)."""
        if not self.generate.server_is_ready():
            raise RuntimeError(f'{self.config.target}/generate is not offered '
                               '(is the chat node running?)')
        future = self.generate.send_goal_async(Generate.Goal(prompt=text))
        try:
            handle = await asyncio.wait_for(wrap(future), self.config.service_timeout)
        except asyncio.TimeoutError:
            raise RuntimeError('the chat node did not answer the prompt in '
                               f'{self.config.service_timeout:g} s') from None
        if not handle.accepted:
            raise RuntimeError('the chat node refused the prompt (inactive, busy, or a bad '
                               'prompt: its log says why)')
        return handle


def wrap(future: Any) -> 'asyncio.Future[Any]':
    """Return an asyncio future of the running loop that completes with an rclpy future."""
    loop = asyncio.get_running_loop()
    result = loop.create_future()

    def settle(done: Any) -> None:
        if result.done():
            return
        if done.cancelled():
            result.cancel()
        elif done.exception() is not None:
            result.set_exception(done.exception())
        else:
            result.set_result(done.result())

    def relay(done: Any) -> None:
        try:
            loop.call_soon_threadsafe(settle, done)
        except RuntimeError:
            pass  # the loop is closed: the server has ended
    future.add_done_callback(relay)
    return result

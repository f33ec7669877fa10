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
The node's reply topics, lifecycle publishers from configure to cleanup.

``~/output/tokens``, ``~/output/stream``, ``~/output/reply`` and ``~/output/calls``.

``ReplyOutputs`` is the ``worker.Sink``: the chat's worker hands it each piece and the end
of each turn on the model's worker thread, the call guard each event of a call as it happens
(from the thread that runs the call), and it publishes them at once. After ``destroy()``
(cleanup) what still arrives is dropped.
"""

from typing import Any, Callable, Dict, Optional

from rclpy.callback_groups import ReentrantCallbackGroup
from std_msgs.msg import String

from . import interfaces as ifc
from ..msg import FunctionCall, StreamToken


class ReplyOutputs:
    """Publishes replies as they stream; ``ended(turn_id, stats)`` runs before each turn's end."""

    def __init__(self, node: Any, ended: Callable[[int, Optional[Dict[str, float]]], None],
                 lost: Callable[[], None]):
        self._node = node
        self._ended = ended
        self._lost = lost  # the context went down while a reply streamed (Ctrl-C, SIGTERM)
        # their QoS event handlers join a group of these publishers' own: rclpy's groups keep
        # a weak reference to every entity ever added (the node's default group grew by 8
        # at every configure)
        group = ReentrantCallbackGroup()

        def create(msg_type: Any, topic: str, qos: Any) -> Any:
            return node.create_lifecycle_publisher(msg_type, topic, qos, callback_group=group)
        self._tokens = create(String, ifc.OUTPUT_TOKENS, ifc.STREAM_QOS)
        self._stream = create(StreamToken, ifc.OUTPUT_STREAM, ifc.STREAM_QOS)
        self._reply = create(String, ifc.OUTPUT_REPLY, ifc.REPLY_QOS)
        self._calls = create(FunctionCall, ifc.OUTPUT_CALLS, ifc.CALLS_QOS)

    def piece(self, turn_id: int, index: int, text: str) -> None:
        """Publish one new piece of reply text (the model's worker thread)."""
        stream, tokens = self._stream, self._tokens
        if stream is not None and tokens is not None:
            self._publish(lambda: (
                stream.publish(ifc.stream_token(self._now(), turn_id, index, text)),
                tokens.publish(String(data=text))))

    def finished(self, turn_id: int, pieces: int, text: str,
                 stats: Optional[Dict[str, float]]) -> None:
        """Publish the end of a turn, ``ended`` first: the eos piece and the whole reply."""
        stream, reply = self._stream, self._reply
        if stream is None or reply is None:
            return
        try:
            self._ended(turn_id, stats)  # before the publish: the chat file holds the reply
        finally:  # (a failed save is reported on /diagnostics; the reply still goes out)
            stamp = self._now()
            self._publish(lambda: (
                stream.publish(ifc.stream_token(stamp, turn_id, pieces, '', eos=True)),
                reply.publish(String(data=text))))

    def call_event(self, event: Any) -> None:
        """Publish one event of a function call on ``~/output/calls`` (a ``guard.CallEvent``)."""
        calls = self._calls
        if calls is not None:
            stamp = self._now()
            self._publish(lambda: calls.publish(ifc.call_event(stamp, event)))

    def destroy(self) -> None:
        """Destroy the publishers (cleanup); what arrives later is dropped."""
        publishers = (self._tokens, self._stream, self._reply, self._calls)
        self._tokens = self._stream = self._reply = self._calls = None
        for publisher in publishers:
            self._node.destroy_lifecycle_publisher(publisher)

    def _now(self) -> Any:
        return self._node.get_clock().now().to_msg()

    def _publish(self, publish: Callable[[], Any]) -> None:
        try:
            publish()
        except Exception:  # noqa: BLE001 - see below
            if self._node.context.ok():
                raise
            # Ctrl-C or SIGTERM shut the context down while a reply streamed: main() stops
            # the worker next; stop the reply now, this is no error
            self._lost()

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
The caller of a ``service:`` entry: one request (arguments and ``set:`` by path) per call.

A ROS service cannot be cancelled: an interrupted or timed-out call stops waiting and drops
the late response.
"""

import time
from typing import Any, Dict

from .caller import Caller
from .entries import Entry
from .fields import Layout, message_text
from .waiting import Waiter


class ServiceCaller(Caller):
    """Calls the service of one entry through its client (created here)."""

    def __init__(self, node: Any, entry: Entry, srv_type: Any, layout: Layout,
                 callback_group: Any):
        super().__init__(node, entry, layout)
        self._client = node.create_client(srv_type, entry.service,
                                          callback_group=callback_group)

    def call(self, values: Dict[str, Any], waiter: Waiter) -> str:
        """Send the request and wait for the response (within the entry's timeout)."""
        entry = self.entry
        request = self.layout.build(values)
        client = self._client
        deadline = time.monotonic() + entry.timeout
        if not waiter.ready(client.service_is_ready, deadline):
            return f'error: {entry.name}: ' + (waiter.reason or (
                f"service '{entry.service}' is not available (waited {entry.timeout:g} s)"))
        future = client.call_async(request)
        if not waiter.until(future, deadline):
            client.remove_pending_request(future)
            future.cancel()
            if waiter.reason:
                return f'error: {entry.name}: {waiter.reason}'
            return (f"error: {entry.name}: service '{entry.service}' did not answer within "
                    f'{entry.timeout:g} s')
        if future.cancelled():
            return f'error: {entry.name}: the call was cancelled'
        if future.exception() is not None:
            exc = future.exception()
            return f'error: {entry.name}: {type(exc).__name__}: {exc}'
        return message_text(future.result())

    def destroy(self) -> None:
        """Destroy the client."""
        self._node.destroy_client(self._client)

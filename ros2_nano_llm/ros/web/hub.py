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
What every page shows, kept in one place and sent to each page (on the server's event loop).

``Hub.publish(event)`` updates the shared view (the chat from ``~/get_history``, the reply
streaming now, robot calls and pending approvals, the diagnostics, the chat node's state,
the camera frame's number) and queues the event for every page. A new page gets
``snapshot()`` first, so several browsers see the same chat. Each page has its own bounded
queue: a page that cannot keep up is closed (it reconnects and gets a fresh snapshot) and
never holds up the others.
"""

import asyncio
import collections
import json
import time
from typing import Any, Deque, Dict, List, Optional

Event = Dict[str, Any]
QUEUE_DEPTH = 2000   # events waiting for one page before it counts as too slow
RECENT_CALLS = 20    # robot calls kept for a page that opens later


class Page:
    """One connected page: its websocket, its queue, whether it may control the chat."""

    def __init__(self, ws: Any, remote: str):
        self.ws = ws
        self.remote = remote
        self.control = False
        self.queue: 'asyncio.Queue[Optional[str]]' = asyncio.Queue(QUEUE_DEPTH)

    def send(self, event: Event) -> bool:
        """Queue one event; return False when the page is too slow (its queue is full)."""
        try:
            self.queue.put_nowait(json.dumps(event))
            return True
        except asyncio.QueueFull:
            return False

    async def write(self) -> None:
        """Send the queued events until ``None`` or a closed socket (the page's writer task)."""
        while True:
            text = await self.queue.get()
            if text is None or self.ws.closed:
                return
            await self.ws.send_str(text)


class Hub:
    """The shared view of the chat and the pages that show it."""

    def __init__(self, target: str):
        self.target = target
        self.pages: List[Page] = []
        self.state = 'unknown'
        self.history: Optional[Event] = None
        self.live: Optional[Event] = None        # {'turn_id', 'text', 'prompt', 'eos'}
        self.prompts: Deque[str] = collections.deque(maxlen=8)  # sent, not in history yet
        self.calls: 'collections.OrderedDict[str, Event]' = collections.OrderedDict()
        self.pending: Dict[str, Event] = {}
        self.diagnostics: Optional[Event] = None
        self.frame: Optional[Event] = None

    def add(self, page: Page) -> None:
        """Show the current view to a new page and send it every event from now on."""
        self.pages.append(page)
        for event in self.snapshot():
            page.send(event)

    def remove(self, page: Page) -> None:
        """Forget a page (closed)."""
        if page in self.pages:
            self.pages.remove(page)
        try:
            page.queue.put_nowait(None)  # ends its writer
        except asyncio.QueueFull:
            pass

    def snapshot(self) -> List[Event]:
        """Return the events that bring a new page to the shared view."""
        events: List[Event] = [{'type': 'state', 'state': self.state}]
        if self.history is not None:
            events.append(self.history)
        events += [{'type': 'prompt', 'text': text, 'source': 'page'} for text in self.prompts]
        if self.live is not None:
            events.append({'type': 'live', **self.live})
        events += list(self.calls.values())
        events += list(self.pending.values())
        for event in (self.diagnostics, self.frame):
            if event is not None:
                events.append(event)
        return events

    def publish(self, event: Event) -> None:
        """Update the view with one event and send it to every page."""
        kind = event['type']
        if kind == 'token':
            self._token(event)
        elif kind == 'prompt':
            self.prompts.append(event['text'])
        elif kind == 'history':
            self.history = event
            self.prompts.clear()  # they are in the chat now
            if self.live is not None and self.live['eos']:
                self.live = None
        elif kind == 'call':
            self._remember_call(event)
            self.pending.pop(event['call_id'], None)
        elif kind == 'pending':
            self.pending[event['call_id']] = event
        elif kind == 'state':
            if event['state'] != 'active' and self.live is not None:
                self.live['eos'] = True   # the reply ended with the node
            self.state = event['state']
        elif kind == 'diagnostics':
            self.diagnostics = event
        elif kind == 'frame':
            self.frame = event
        self.broadcast(event)

    def broadcast(self, event: Event) -> None:
        """Send one event to every page; close the pages that cannot keep up."""
        for page in list(self.pages):
            if not page.send(event):
                self.pages.remove(page)
                asyncio.ensure_future(page.ws.close(
                    code=1013, message=b'too slow to keep up: reconnect'))

    def drop_expired(self, now: Optional[float] = None) -> None:
        """Forget pending calls past their deadline (the chat node denied them)."""
        now = time.time() if now is None else now
        for call_id, event in list(self.pending.items()):
            if event['deadline'] and event['deadline'] < now - 1.0:
                del self.pending[call_id]

    def _token(self, event: Event) -> None:
        live = self.live
        if live is None or live['turn_id'] != event['turn_id']:
            live = self.live = {'turn_id': event['turn_id'], 'text': '', 'eos': False,
                                'started': time.time()}
        live['text'] += event['text']
        live['eos'] = live['eos'] or event['eos']

    def _remember_call(self, event: Event) -> None:
        key = event['call_id'] or f"{event['turn_id']}:{event['name']}:{len(self.calls)}"
        self.calls[key] = event
        self.calls.move_to_end(key)
        while len(self.calls) > RECENT_CALLS:
            self.calls.popitem(last=False)

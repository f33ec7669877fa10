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
The web server (aiohttp): the page, the latest camera frame, and one websocket per page.

Why aiohttp: one well-kept asyncio library gives the HTTP server and the websockets (no
ASGI server beside it), and the page is plain HTML/JS served from the package (no build
step). Every page sees the chat; only a page that sent the control token (``auth``) may
prompt, stop, reset or decide on calls. What pages send is bounded: a request size, a
message size, a rate per page and per address, a number of pages; a bad message gets an
``error`` answer and the connection stays.
"""

import asyncio
import hmac
import pathlib
from typing import Any, Dict, Optional, Set
from urllib.parse import urlsplit

from aiohttp import web, WSMsgType

from .bridge import wrap
from .hub import Hub, Page
from .limits import CONTROL_OPS, parse_message, TokenBucket

STATIC = pathlib.Path(__file__).resolve().parent / 'static'
HARD_MESSAGE_BYTES = 1 << 20   # past this aiohttp closes that one websocket (code 1009)
MAX_REQUEST_BYTES = 1 << 16
# The page runs only its own script: no inline script, no other origin (a defence beside
# rendering every text with textContent).
HEADERS = {
    'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' blob:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
}


class WebServer:
    """The aiohttp application of one web node; ``bridge`` is its ChatBridge."""

    def __init__(self, bridge: Any, hub: Hub):
        self.bridge = bridge
        self.config = bridge.config
        self.hub = hub
        self.log = bridge.get_logger()
        self._by_address: Dict[str, TokenBucket] = {}
        self._goals: Dict[bytes, Any] = {}   # goal id -> handle, of the prompts sent from pages
        self._tasks: Set['asyncio.Task[Any]'] = set()
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES,
                                   middlewares=[self._limit_requests])
        self.app.add_routes([
            web.get('/', self._index),
            web.get('/frame.jpg', self._frame),
            web.get('/ws', self._websocket),
            web.static('/static', STATIC, show_index=False),
        ])
        self.app.on_response_prepare.append(self._headers)

    # ---- HTTP ---------------------------------------------------------------------------
    @web.middleware
    async def _limit_requests(self, request: web.Request, handler: Any) -> web.StreamResponse:
        remote = request.remote or '?'
        bucket = self._by_address.get(remote)
        if bucket is None:
            if len(self._by_address) > 1000:
                self._by_address.clear()
            bucket = self._by_address[remote] = TokenBucket(
                self.config.requests_per_second, 4 * self.config.requests_per_second)
        if not bucket.take():
            return web.Response(status=429, text='too many requests: at most '
                                f'{self.config.requests_per_second:g} per second\n')
        return await handler(request)

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / 'index.html')

    async def _frame(self, request: web.Request) -> web.StreamResponse:
        frame = self.bridge.frame
        if frame is None:
            return web.Response(status=404, text='no camera frame yet\n')
        return web.Response(body=frame, content_type='image/jpeg')

    # ---- websockets ---------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get('Origin')
        if origin and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text='another site may not open the websocket of '
                                'this page\n')
        if len(self.hub.pages) >= self.config.max_pages:
            return web.Response(status=503, text=f'{self.config.max_pages} pages are open '
                                'already (max_pages); close one\n')
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=HARD_MESSAGE_BYTES)
        await ws.prepare(request)
        page = Page(ws, request.remote or '?')
        writer = asyncio.ensure_future(page.write())
        page.send(self._hello(page))
        self.hub.add(page)
        self._spawn(self._refresh_history())  # the chat as it is when the page opens
        bucket = TokenBucket(self.config.messages_per_second, self.config.message_burst)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_message(page, bucket, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    page.send({'type': 'error', 'error': 'binary messages are not understood; '
                               'send JSON text'})
        finally:
            self.hub.remove(page)
            writer.cancel()
        return ws

    def _hello(self, page: Page) -> Dict[str, Any]:
        c = self.config
        return {'type': 'hello', 'target': c.target, 'control': page.control,
                'limits': {'max_prompt_chars': c.max_prompt_chars,
                           'max_message_bytes': c.max_message_bytes,
                           'messages_per_second': c.messages_per_second}}

    async def _on_message(self, page: Page, bucket: TokenBucket, data: str) -> None:
        message, problem = parse_message(data, self.config.max_message_bytes,
                                         self.config.max_prompt_chars)
        request_id = message.get('id') if message else None
        if not bucket.take():
            problem = (f'rate limit: at most {self.config.messages_per_second:g} messages a '
                       'second; this one was dropped')
        elif message is not None and message['op'] in CONTROL_OPS and not page.control:
            problem = (f"{message['op']}: this page is read-only; give the control token "
                       '(the web node prints it in its log)')
        if problem:
            page.send({'type': 'error', 'id': request_id, 'error': problem})
            return
        op = message['op']
        if op == 'auth':
            page.control = hmac.compare_digest(message['token'].encode(),
                                               self.config.token.encode())
            page.send({'type': 'auth', 'id': request_id, 'control': page.control,
                       'error': '' if page.control else 'wrong token: read-only'})
            return
        self._spawn(self._run(page, request_id, op, message))

    async def _run(self, page: Page, request_id: Any, op: str, message: Dict[str, Any]) -> None:
        try:
            text = await self._control(op, message)
            page.send({'type': 'ack', 'id': request_id, 'op': op, 'message': text})
        except RuntimeError as error:
            page.send({'type': 'error', 'id': request_id, 'op': op, 'error': str(error)})
        except Exception as error:  # noqa: B902 - a request never ends the server
            self.log.error(f'{op} failed: {type(error).__name__}: {error}')
            page.send({'type': 'error', 'id': request_id, 'op': op,
                       'error': f'{op} failed: {type(error).__name__}: {error}'})

    async def _control(self, op: str, message: Dict[str, Any]) -> str:
        bridge = self.bridge
        if op == 'history':
            await self._refresh_history()
            return 'history sent'
        if op == 'prompt':
            handle = await bridge.send_prompt(message['text'])
            self.hub.publish({'type': 'prompt', 'text': message['text'], 'source': 'page'})
            self._goals[bytes(handle.goal_id.uuid)] = handle
            self._spawn(self._await_result(handle))
            return 'prompt accepted'
        if op == 'stop':
            if self._goals:  # cancel the goals the pages sent; else stop whatever replies
                await self._cancel_goals()
                return 'reply cancelled'
            ok, text = await bridge.trigger('stop')
        elif op == 'reset':
            ok, text = await bridge.trigger('reset')
            await self._refresh_history()
        else:  # decide
            if not bridge.offers('approve_call'):
                raise RuntimeError(f'{self.config.target} offers no ~/approve_call (a chat '
                                   'node without operator approval)')
            ok, text = await bridge.decide(message['call_id'], message['approve'],
                                           message.get('reason', '') or 'by the operator')
        if not ok:
            raise RuntimeError(text)
        return text

    async def _cancel_goals(self) -> None:
        timeout = self.config.service_timeout
        try:
            for handle in list(self._goals.values()):
                await asyncio.wait_for(wrap(handle.cancel_goal_async()), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f'the chat node did not answer the cancel in {timeout:g} s'
                               ) from None

    async def _await_result(self, handle: Any) -> None:
        try:
            response = await wrap(handle.get_result_async())
            result = response.result
            self.hub.publish({'type': 'result', 'reply': result.reply,
                              'stop_reason': result.stop_reason,
                              'time_to_first_token': result.time_to_first_token,
                              'decode_rate': result.decode_rate})
        finally:
            self._goals.pop(bytes(handle.goal_id.uuid), None)
        await self._refresh_history()

    async def _refresh_history(self) -> None:
        try:
            self.hub.publish(await self.bridge.history())
        except RuntimeError as error:
            self.log.debug(f'history not refreshed: {error}')

    # ---- the chat node's state ----------------------------------------------------------
    async def watch_state(self) -> None:
        """Check the chat node's lifecycle state every ``state_period``; tell the pages."""
        while True:
            state = await self.bridge.state()
            if state != self.hub.state:
                if state != 'active':
                    self._goals.clear()  # a node that went away answers none of them
                self.hub.publish({'type': 'state', 'state': state})
                if state == 'active':
                    await self._refresh_history()
            self.hub.drop_expired()
            await asyncio.sleep(self.config.state_period)

    def event_from_ros(self, event: Dict[str, Any]) -> None:
        """Take one event of the bridge (on the loop); the end of a reply refreshes the chat."""
        self.hub.publish(event)
        if event['type'] == 'reply':
            self._spawn(self._refresh_history())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: 'asyncio.Task[Any]') -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error: Optional[BaseException] = task.exception()
            self.log.error(f'web request failed: {type(error).__name__}: {error}')

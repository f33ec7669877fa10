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
"""The web node's parameters: one table, declared by the node and read into a frozen config."""

import dataclasses
import secrets
from typing import Any, Callable, Dict, Tuple


@dataclasses.dataclass(frozen=True)
class WebConfig:
    """The web node's settings: the defaults of its parameters (DESCRIPTIONS says each)."""

    target: str = '/nano_llm'
    host: str = '127.0.0.1'
    port: int = 8080
    token: str = ''
    image_topic: str = ''
    frame_side: int = 240
    frame_period: float = 0.5
    max_frame_size: int = 4096
    max_message_bytes: int = 8192
    max_prompt_chars: int = 4000
    messages_per_second: float = 4.0
    message_burst: int = 12
    requests_per_second: float = 20.0
    max_pages: int = 16
    service_timeout: float = 10.0
    state_period: float = 1.0
    token_generated: bool = False

    @property
    def camera_topic(self) -> str:
        """Return the camera topic: ``image_topic``, else the target's ``~/input/image``."""
        return self.image_topic or f'{self.target}/input/image'


# What each parameter means (its default is WebConfig's); the node declares them all.
DESCRIPTIONS: Dict[str, str] = {
    'target': 'the chat node this page is for (its fully qualified name)',
    'host': "address to serve on; '0.0.0.0' opens the page to the network",
    'port': 'TCP port to serve on (0: any free port; the log says which)',
    'token': 'control token (prompts, stop, reset, approvals); empty: one is generated '
             'at start and printed in the log',
    'image_topic': "camera topic shown on the page; empty: the target's ~/input/image "
                   '(its /compressed too)',
    'frame_side': 'the camera frame is scaled down to this many pixels on its shorter side',
    'frame_period': 'seconds between two camera frames sent to the pages',
    'max_frame_size': 'camera frames wider or taller than this are not shown',
    'max_message_bytes': 'largest websocket message a page may send',
    'max_prompt_chars': 'longest prompt a page may send',
    'messages_per_second': 'websocket messages a page may send per second, sustained',
    'message_burst': 'websocket messages a page may send at once',
    'requests_per_second': 'HTTP requests per second from one address, sustained',
    'max_pages': 'pages connected at once',
    'service_timeout': "seconds to wait for the chat node's services",
    'state_period': "seconds between two checks of the chat node's lifecycle state",
}
# name -> (default, description), in declaration order
PARAMETERS: Dict[str, Tuple[Any, str]] = {
    f.name: (f.default, DESCRIPTIONS[f.name]) for f in dataclasses.fields(WebConfig)
    if f.name in DESCRIPTIONS}


def read(get: Callable[[str], Any]) -> WebConfig:
    """Return the config from ``get(name)`` for each parameter; raise ValueError if one is bad."""
    values = {name: get(name) for name in PARAMETERS}
    target = str(values['target']).strip()
    if not target.startswith('/') or target.endswith('/') or ' ' in target:
        raise ValueError(f"target must be a node's fully qualified name such as /nano_llm, "
                         f'got {target!r}')
    values['target'] = target
    if not 0 <= int(values['port']) <= 65535:
        raise ValueError(f"port must be in 0..65535, got {values['port']}")
    for name in ('frame_side', 'max_frame_size', 'max_message_bytes', 'max_prompt_chars',
                 'message_burst', 'max_pages'):
        if int(values[name]) < 1:
            raise ValueError(f'{name} must be at least 1, got {values[name]}')
    for name in ('frame_period', 'messages_per_second', 'requests_per_second',
                 'service_timeout', 'state_period'):
        if not float(values[name]) > 0.0:
            raise ValueError(f'{name} must be above 0, got {values[name]}')
    generated = not values['token']
    if generated:
        values['token'] = secrets.token_urlsafe(18)
    return WebConfig(token_generated=generated, **values)

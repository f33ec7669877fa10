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
"""What a page may send: a token bucket per page (and per address), and message checks."""

import json
import time
from typing import Any, Dict, Optional, Tuple


class TokenBucket:
    """``rate`` events per second sustained, ``burst`` at once; ``take()`` says if one may pass."""

    def __init__(self, rate: float, burst: float):
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; return whether there was."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


# op -> {field: type} it needs (every op may carry an 'id' the answer echoes)
OPS: Dict[str, Dict[str, type]] = {
    'auth': {'token': str},
    'prompt': {'text': str},
    'stop': {},
    'reset': {},
    'decide': {'call_id': str, 'approve': bool},
    'history': {},
}
CONTROL_OPS = frozenset({'prompt', 'stop', 'reset', 'decide'})


def parse_message(data: str, max_bytes: int, max_prompt_chars: int
                  ) -> Tuple[Optional[Dict[str, Any]], str]:
    """Return ``(message, '')`` for a well-formed request from a page, else ``(None, why)``."""
    size = len(data.encode('utf-8', 'surrogatepass'))
    if size > max_bytes:
        return None, f'message too large: {size} bytes, at most {max_bytes}'
    try:
        message = json.loads(data)
    except ValueError as error:
        return None, f'not JSON: {error}'
    if not isinstance(message, dict):
        return None, 'a message must be a JSON object with an "op"'
    op = message.get('op')
    if op not in OPS:
        return None, f'unknown op {str(op)[:40]!r}; one of: {", ".join(sorted(OPS))}'
    for field, kind in OPS[op].items():
        if not isinstance(message.get(field), kind):
            return None, f'{op}: {field} must be a {kind.__name__}'
    if not isinstance(message.get('reason', ''), str):
        return None, f'{op}: reason must be a string'
    if op == 'prompt':
        text = message['text']
        if not text.strip():
            return None, 'prompt: the text is empty'
        if len(text) > max_prompt_chars:
            return None, f'prompt: {len(text)} characters, at most {max_prompt_chars}'
    return message, ''

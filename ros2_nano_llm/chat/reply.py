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
The record of one reply, kept apart from its token stream.

A ``StreamingResponse`` (``chat/stream.py``) carries the reply's tokens and text to its
reader. What the generation did besides is a :class:`Reply`: the function calls that ran,
why it ended, the error if it failed, its :class:`Figures`, the reader's request to stop, and
which KV cache it extended. The generation loop writes it; the chat session, the node and the
terminal chat read it; the stream only points to it (``StreamingResponse.record``).
"""

from dataclasses import asdict, dataclass
import threading
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class Figures:
    """The measured figures of one reply (the keys of ``NanoLLM.stats``)."""

    input_tokens: int = 0         # positions prefilled
    output_tokens: int = 0        # tokens in the reply (injected function results included)
    prefill_time: float = 0.0     # seconds
    prefill_rate: float = 0.0     # positions per second
    decode_time: float = 0.0      # seconds, from the end of the prefill to the last token
    decode_rate: float = 0.0      # tokens per second after the first
    time_to_first_token: float = float('nan')  # seconds from generate() to the first token

    @classmethod
    def measure(cls, input_tokens: int, output_tokens: int, prefill_time: float,
                decode_time: float, first_token_at: Optional[float],
                submitted: float) -> 'Figures':
        """Return the figures of a reply from its counts and ``time.perf_counter()`` times."""
        return cls(
            input_tokens=input_tokens, output_tokens=output_tokens,
            prefill_time=prefill_time, prefill_rate=input_tokens / max(prefill_time, 1e-9),
            decode_time=decode_time,
            decode_rate=(output_tokens - 1) / max(decode_time, 1e-9) if output_tokens > 1
            else 0.0,
            time_to_first_token=(first_token_at - submitted) if first_token_at
            else float('nan'))

    def as_dict(self) -> Dict[str, float]:
        """Return the figures as a dict (the form of ``NanoLLM.stats``)."""
        return asdict(self)


class Reply:
    """
    What one ``generate()`` did, apart from its text.

    ``calls``: the ``functions.calls.FunctionCall`` records of the calls that ran, in order
    (the function hook appends them as they run). ``stop_reason``: why it ended (``'eos'``,
    ``'stop'``, ``'length'``, ``'stopped'`` or ``'error'``; None while running), with
    ``error`` when it failed. ``figures``: its :class:`Figures` (None until it ended well).
    ``kv_cache``: the cache the reply extended. It is a reference: the cache belongs to
    whoever passed it to ``generate()`` (the ``ChatHistory``), or to the caller who adopts it
    (``history.kv_cache = reply.kv_cache``) when ``generate()`` made a fresh one.
    """

    def __init__(self, kv_cache: Any = None):
        self.kv_cache = kv_cache
        self.calls: List[Any] = []
        self.stop_reason: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.figures: Optional[Figures] = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the generation to end this reply after the current token."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Return True once ``stop()`` was asked for."""
        return self._stop.is_set()

    def end(self, reason: str, error: Optional[BaseException] = None) -> None:
        """Record why the reply ended (and its error, if it failed)."""
        self.stop_reason, self.error = reason, error

    def __repr__(self) -> str:
        return (f'Reply(stop_reason={self.stop_reason!r}, calls={len(self.calls)}, '
                f'error={self.error!r})')

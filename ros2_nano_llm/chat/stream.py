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
StreamingResponse: the bridge between the generation worker and its reader.

The stream carries the reply's tokens and text. The record of the reply (its calls, why it
ended, its figures, the stop request, the cache it extended) is a ``chat.reply.Reply`` that
the stream points to as ``record``; the stream's ``calls``, ``stop_reason``, ``error``,
``kv_cache``, ``stop()`` and ``stopped`` read it, for NanoLLM's users of the response.
"""

import logging
import queue
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence

from .reply import Reply

log = logging.getLogger(__name__)

_END = object()


class StreamingResponse:
    r"""
    The reply of ``NanoLLM.generate()``, filled token by token from the worker thread.

    Iterating yields each new piece of text as soon as it decodes cleanly: a piece never
    ends inside a multi-byte character, and the pieces concatenate to ``.text``.
    ``timeout`` bounds each wait, so a crashed worker cannot hang the reader.

    ``eos`` is True once generation has ended, for any reason, and already while the last
    piece is handed out, so NanoLLM's loop
    ``print(piece, end='\n\n' if reply.eos else '')`` ends every reply with its blank
    line. When the end comes only after the last text was handed out, one closing piece
    ``''`` carries it. ``stop_reason`` says why it ended: ``'eos'`` (a stop token),
    ``'stop'`` (a stop string), ``'length'`` (``max_new_tokens`` or the context),
    ``'stopped'`` (``stop()``) or ``'error'``; None while running.

    Instead of iterating, a reader may ``subscribe()``: the pieces are then handed to it on
    the worker thread as they decode, with no hand-off to another thread (the node does so).

    ``record`` is the reply's ``Reply`` (default: a new one for ``kv_cache``); the
    properties below that read it are read-only.
    """

    def __init__(self, detokenize: Callable[[Sequence[int]], str],
                 timeout: Optional[float] = 300.0, kv_cache: Any = None,
                 record: Optional[Reply] = None):
        self._detokenize = detokenize
        self._queue: 'queue.Queue[Any]' = queue.Queue()
        self._done = threading.Event()
        self.timeout = timeout
        self.tokens: List[int] = []
        self.record = record if record is not None else Reply(kv_cache)
        self._read = 0          # tokens consumed by the reader
        self._prefix_off = 0    # decode window start
        self._read_off = 0      # tokens already turned into text
        self._reading = False   # a reader has started iterating
        self._last_given = False  # the last piece (with eos) was handed out
        self._lock = threading.Lock()  # orders put()/end() against subscribe()
        self._on_piece: Optional[Callable[[str], None]] = None
        self._on_end: Optional[Callable[['StreamingResponse'], None]] = None

    # ---- worker side -------------------------------------------------------------------
    def put(self, token: int) -> None:
        """Add one generated token (worker thread)."""
        with self._lock:
            self.tokens.append(int(token))
            if self._on_piece is None:
                self._queue.put(int(token))
                return
            self._read += 1
            piece = self._new_text(final=False)
        if piece:
            self._hand(self._on_piece, piece)

    def end(self, eos: bool = False, reason: str = 'length',
            error: Optional[BaseException] = None) -> None:
        """
        Finish the stream (worker thread) with ``reason`` (see the class docstring).

        ``eos`` (True when a stop token ended it) is kept for callers of the old signature:
        ``reason`` says it all.
        """
        with self._lock:
            self.record.end('eos' if eos and reason == 'length' else reason, error)
            # done first: a reader that sees the end must also see ``done``
            self._done.set()
            if self._on_piece is None:
                self._queue.put(_END)
                return
        self._deliver_end()

    def _deliver_end(self) -> None:
        # a subscriber's last piece (text held back until the end), then its on_end
        piece = self._new_text(final=True) if self.error is None else ''
        if piece:
            self._hand(self._on_piece, piece)
        self._hand(self._on_end, self)

    def _hand(self, callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception:  # noqa: BLE001 - a subscriber's bug must not end generation silently
            log.exception('a reply subscriber failed; stopping the reply')
            self.stop()

    # ---- reader side -------------------------------------------------------------------
    def subscribe(self, on_piece: Callable[[str], None],
                  on_end: Callable[['StreamingResponse'], None]) -> None:
        """
        Take the reply by callbacks instead of iterating it.

        ``on_piece(text)`` gets each new piece and ``on_end(reply)`` the end (then
        ``stop_reason``, ``error`` and ``text`` are final), both on the model's worker thread
        as generation goes: keep them short, they hold up the next token, and never wait
        for the model's worker from them. Pieces generated before this call (and the end,
        if it came) are handed over at once, in this thread. A callback that raises is
        logged and stops the reply. A reply has one reader.
        """
        with self._lock:
            if self._reading or self._on_piece is not None:
                raise RuntimeError('this reply already has a reader')
            self._on_piece, self._on_end = on_piece, on_end
            backlog = []
            while not self._queue.empty():
                backlog.append(self._queue.get_nowait())
            for item in backlog:
                if item is not _END:
                    self._read += 1
                    piece = self._new_text(final=False)
                    if piece:
                        self._hand(on_piece, piece)
            if self._done.is_set():
                self._deliver_end()

    def __iter__(self) -> Iterator[str]:
        return self

    @property
    def eos(self) -> bool:
        """
        Return True once generation has ended (for any reason) and the reader has its end.

        While a reader iterates, it turns True with the last piece; without a reader it is
        True as soon as the worker has finished.
        """
        return self._done.is_set() and (self._last_given or not self._reading)

    def __next__(self) -> str:
        if self._on_piece is not None:
            raise RuntimeError('this reply is taken by subscribe(); it cannot be iterated')
        self._reading = True
        if self._last_given:
            if self.error is not None:
                raise RuntimeError(f'generation failed: {self.error}') from self.error
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=self.timeout)
            except queue.Empty:
                raise TimeoutError(f'no token for {self.timeout} s: generation worker stalled')
            if item is _END:
                self._queue.put(_END)  # later reads end too
                if self.error is not None:
                    raise RuntimeError(f'generation failed: {self.error}') from self.error
                self._last_given = True
                return self._new_text(final=True)  # '' when the text was all handed out
            self._read += 1
            piece = self._new_text(final=False)
            if piece:
                if self._done.is_set() and self.error is None and not self._text_left():
                    self._last_given = True  # nothing after this piece: it carries eos
                return piece

    def _text_left(self) -> bool:
        # whether the tokens the reader has not consumed yet still decode to more text
        window = self.tokens[self._prefix_off:]
        return len(self._detokenize(window)) > len(
            self._detokenize(self.tokens[self._prefix_off:self._read_off]))

    def _new_text(self, final: bool) -> str:
        # incremental decode over a sliding window (prefix, read): cost stays per token and a
        # leading-space or merged-byte token decodes the same as it does in the full text
        prefix = self._detokenize(self.tokens[self._prefix_off:self._read_off])
        text = self._detokenize(self.tokens[self._prefix_off:self._read])
        if len(text) <= len(prefix) or (text.endswith('\ufffd') and not final):
            return ''  # nothing new yet, or an incomplete multi-byte character
        self._prefix_off, self._read_off = self._read_off, self._read
        return text[len(prefix):]

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until generation ends; return the whole text."""
        if not self._done.wait(timeout if timeout is not None else self.timeout):
            raise TimeoutError('generation did not finish in time')
        self._reading = False  # the caller has what it waited for: eos may show
        if self.error is not None:
            raise RuntimeError(f'generation failed: {self.error}') from self.error
        return self.text

    @property
    def done(self) -> bool:
        """Return True once the worker has finished this reply."""
        return self._done.is_set()

    @property
    def text(self) -> str:
        """Return the text of every token generated so far."""
        return self._detokenize(self.tokens)

    def __str__(self) -> str:
        return self.text

    # ---- the reply's record (read-only, for NanoLLM's users of the response) --------------
    @property
    def error(self) -> Optional[BaseException]:
        """Return why generation failed (None unless it did): ``record.error``."""
        return self.record.error

    @property
    def stop_reason(self) -> Optional[str]:
        """Return why the reply ended (see the class docstring): ``record.stop_reason``."""
        return self.record.stop_reason

    @property
    def calls(self) -> List[Any]:
        """Return the function calls that ran during this reply: ``record.calls``."""
        return self.record.calls

    @property
    def kv_cache(self) -> Any:
        """Return the KV cache this reply extended: ``record.kv_cache``."""
        return self.record.kv_cache

    @property
    def stopped(self) -> bool:
        """Return True once ``stop()`` was asked for: ``record.stopped``."""
        return self.record.stopped

    def stop(self) -> None:
        """Ask the worker to end this reply after the current token (on the record)."""
        self.record.stop()

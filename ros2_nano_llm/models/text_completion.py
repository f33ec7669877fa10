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
The text-completion base: engines that take a prompt text and stream text chunks.

The chat is rendered by ChatHistory's template into local token ids, and the KV cache keeps
its keys as with any backend. Each request sends the text of every position the cache holds
(plus the new input) as the prompt, so consecutive turns share their prefix and the engine's
own prefix cache (llama.cpp, vLLM, MLC, ollama) reuses it. ``generation.run`` takes the
streamed chunks one by one, as it takes sampled tokens from a logits backend.

The local ids come from :class:`PieceVocab`: each id stands for a piece of text (a word, a
punctuation run, a special marker, or one streamed chunk of a reply), so detokenizing the
cache keys gives back the exact text sent and received.
"""

import abc
import re
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .backend import EngineRequest, TextEngineBackend
from .base import ModelConfig

# special markers, contractions, letter runs (at most 8 letters, a rough BPE token), numbers,
# punctuation runs and whitespace: every character falls in one piece
_PIECES = re.compile(r"<\|[^|<>\s]{1,40}\|>|'(?:[sdmt]|ll|ve|re)(?![^\W\d_])| ?[^\W\d_]{1,8}"
                     r'| ?\d{1,3}| ?_+| ?[^\s\w]+|\s+(?!\S)|\s+|.', re.S)


class PieceVocab:
    """Reversible local token ids: each id is one piece of text, numbered as first seen."""

    def __init__(self):
        self._ids: Dict[str, int] = {}
        self._pieces: List[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pieces)

    def intern(self, piece: str) -> int:
        """Return the id of ``piece``, adding it when new."""
        found = self._ids.get(piece)
        if found is not None:
            return found
        with self._lock:
            if piece not in self._ids:
                self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            return self._ids[piece]

    def encode(self, text: str) -> List[int]:
        """Split ``text`` into pieces and return their ids."""
        return [self.intern(p) for p in _PIECES.findall(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Return the text of ``ids``; raise ValueError for an id never handed out."""
        pieces, n = self._pieces, len(self._pieces)
        out = []
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"id {i} was never handed out by this backend's tokenize()")
            out.append(pieces[i])
        return ''.join(out)


class TextCompletionBackend(TextEngineBackend):
    """
    Base of the backends whose engine takes a prompt text and streams text chunks.

    Subclasses implement :meth:`complete`. The chat layer calls ``tokenize``/``detokenize``
    and keeps a ``KVCache`` as with any backend; ``crop`` has nothing to free here, because
    the prompt of each request is rebuilt from the cache's keys.
    """

    name = 'text'

    def __init__(self, config: ModelConfig):
        self.config = config
        self.vocab = PieceVocab()
        self.last_prompt: Optional[str] = None  # the prompt text of the latest request

    # ---- text and cache ------------------------------------------------------------------
    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = False) -> List[int]:
        """
        Return local ids of ``text`` (reversible; about one per model token).

        ``special`` makes no difference here: the engine receives the prompt as text and
        its own tokenizer decides what markup is.
        """
        return self.vocab.encode(text)

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Return the text of local ids."""
        text = self.vocab.decode(tokens)
        return _SPECIAL.sub('', text) if skip_special_tokens else text

    def new_cache(self) -> None:
        """Return the cache state: none, the keys of the ``KVCache`` say it all."""
        return None

    def crop(self, cache: Any, length: int) -> None:
        """Nothing to drop: the next prompt is rebuilt from the cropped keys."""

    # ---- one reply -----------------------------------------------------------------------
    @abc.abstractmethod
    def complete(self, prompt: str, request: Dict[str, Any]) -> Iterator[Tuple[str, Any]]:
        """
        Stream ``(text, finish_reason)`` for ``prompt``; closing the iterator cancels it.

        ``request`` holds the OpenAI completion fields (``max_tokens``, ``temperature``,
        ``top_p``, ``stop``, ``seed``, ``min_tokens``) and ``repetition_penalty`` (the vLLM
        name). ``finish_reason`` is None until the last chunk.
        """

    def continuation(self, prompt: Sequence[int],
                     request: EngineRequest) -> Iterator[Tuple[Optional[int], Optional[str]]]:
        """Stream the continuation of ``prompt`` (local ids): one id per streamed chunk."""
        self.last_prompt = self.detokenize(prompt)
        fields = {'max_tokens': request.max_tokens, 'stop': request.stop,
                  'temperature': request.temperature, 'top_p': request.top_p,
                  'repetition_penalty': request.repetition_penalty, 'seed': request.seed,
                  'min_tokens': request.min_tokens}
        chunks = self.complete(self.last_prompt, {k: v for k, v in fields.items()
                                                  if v is not None})
        try:
            for text, finish in chunks:
                yield (self.vocab.intern(text) if text else None), finish
        finally:
            chunks.close()  # ends the request when the loop stopped reading early


_SPECIAL = re.compile(r'<\|[^|<>\s]{1,40}\|>')

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
The backend interface, the prompt input type and the KV cache record.

A backend is stateless between calls: the caller owns the cache and passes it in,
the way ``past_key_values`` works in transformers.
"""

from dataclasses import dataclass, field
import itertools
from typing import Any, List, Optional, Protocol, Sequence, Union

import torch

# A prompt segment is either token ids or an embedding of shape (T, D) (e.g. an image).
Segment = Union[List[int], torch.Tensor]

_opaque_ids = itertools.count()


@dataclass
class ModelConfig:
    """What the chat layer needs to know about a loaded model."""

    name: str
    model_type: str
    max_context_len: int
    vocab_size: int
    eos_token_ids: List[int]
    bos_token_id: Optional[int] = None
    has_vision: bool = False
    tokenizer_chat_template: Optional[str] = None
    path: Optional[str] = None


@dataclass
class Inputs:
    """
    Prompt input to prefill: segments plus one cache key per position.

    Keys identify what sits at each KV position: a token id for text, or a unique
    tuple for each position of an embedding, so a cache can tell exactly how much of
    a new prompt it already holds.
    """

    segments: List[Segment] = field(default_factory=list)
    keys: List[Any] = field(default_factory=list)

    @classmethod
    def from_tokens(cls, tokens: Sequence[int]) -> 'Inputs':
        """Wrap plain token ids."""
        tokens = [int(t) for t in tokens]
        return cls([tokens], list(tokens))

    def add_tokens(self, tokens: Sequence[int]) -> None:
        """Append token ids."""
        tokens = [int(t) for t in tokens]
        if not tokens:
            return
        if self.segments and isinstance(self.segments[-1], list):
            self.segments[-1].extend(tokens)  # each list segment is this Inputs' own copy
        else:
            self.segments.append(tokens)
        self.keys.extend(tokens)

    def add_embedding(self, embedding: torch.Tensor, key: Any = None) -> None:
        """Append an embedding of shape (T, D); ``key`` names it (one key per row)."""
        if key is None:
            key = ('embedding', next(_opaque_ids))
        self.segments.append(embedding)
        self.keys.extend((key, i) for i in range(embedding.shape[0]))

    def slice_from(self, start: int) -> 'Inputs':
        """Return the part of this input from position ``start`` on."""
        out = Inputs()
        pos = 0
        for seg in self.segments:
            n = len(seg) if isinstance(seg, list) else int(seg.shape[0])
            if pos + n > start:
                cut = max(0, start - pos)
                out.segments.append(seg[cut:])
            pos += n
        out.keys = list(self.keys[start:])
        return out

    @property
    def tokens(self) -> List[int]:
        """Return the token ids of the text segments (embeddings left out)."""
        return [t for seg in self.segments if isinstance(seg, list) for t in seg]

    @property
    def is_text(self) -> bool:
        """Return True when every segment is token ids."""
        return all(isinstance(seg, list) for seg in self.segments)

    def __len__(self) -> int:
        return len(self.keys)


class Backend(Protocol):
    """What a model backend implements. Caches are passed in, never hidden."""

    name: str
    config: ModelConfig

    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = True) -> List[int]:
        """Turn text into token ids; control-token text is parsed unless ``special=False``."""

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Turn token ids into text."""

    def new_cache(self) -> Any:
        """Return an empty backend cache state."""

    def prefill(self, inputs: Inputs, cache: Any, start: int) -> torch.Tensor:
        """Run ``inputs`` at positions ``start..`` into ``cache``; return last logits (V,)."""

    def decode_step(self, token: int, cache: Any, pos: int) -> torch.Tensor:
        """Run one token at position ``pos``; return its logits (V,)."""

    def crop(self, cache: Any, length: int) -> None:
        """Drop every cached position from ``length`` on."""


class KVCache:
    """
    A backend cache state plus the key of every position it holds.

    ``len(cache)`` is the number of positions held; it is recorded here, never
    worked out from tensor contents.
    """

    def __init__(self, backend: Backend, state: Any = None):
        self.backend = backend
        self.state = backend.new_cache() if state is None else state
        self.keys: List[Any] = []

    def __len__(self) -> int:
        return len(self.keys)

    def common_prefix(self, keys: Sequence[Any]) -> int:
        """Return how many leading positions of ``keys`` this cache already holds."""
        n = 0
        for a, b in zip(self.keys, keys):
            if a != b:
                break
            n += 1
        return n

    def crop(self, length: int) -> None:
        """Truncate to the first ``length`` positions."""
        length = max(0, min(length, len(self.keys)))
        if length < len(self.keys):
            self.backend.crop(self.state, length)
            del self.keys[length:]

    def reset(self) -> None:
        """Empty the cache."""
        self.crop(0)

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
The backend contract: two kinds, each an abstract base class.

- :class:`LogitsBackend` runs the model one step at a time and returns logits; the
  generation loop (``generation.run``) samples from them (``hf``, ``llama_cpp``).
- :class:`TextEngineBackend` is an engine that samples by itself; it streams the
  continuation of a prompt that extends the previous one, and the same generation loop
  takes its tokens one by one (``openai``, ``mlc``).

Both share :class:`Backend`: text <-> token ids, a cache state the caller owns, and the
optional parts (images, input embeddings, ``close``) declared with defaults, so no caller
needs ``getattr``/``hasattr`` to learn what a backend can do.
"""

import abc
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .base import Inputs, ModelConfig
from .loading import ModelSource, resolve


class Backend(abc.ABC):
    """What every backend implements. Caches are passed in, never hidden."""

    name: str = 'backend'
    config: ModelConfig
    tokenizer: Any = None  # the library tokenizer object, where the backend has one

    @staticmethod
    def resolve(model: str) -> ModelSource:
        """Return where ``model`` comes from (a backend may name models its own way)."""
        return resolve(model)

    @classmethod
    @abc.abstractmethod
    def load(cls, source: ModelSource, quantization: Optional[str] = None,
             max_context_len: Optional[int] = None, **kwargs) -> 'Backend':
        """Load the model ``source`` names; other keyword arguments are backend options."""

    @abc.abstractmethod
    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = False) -> List[int]:
        """
        Turn text into token ids.

        With ``special=False`` control-token text such as ``<|im_end|>`` is plain text;
        ``special=True`` parses it into control tokens (template markup only).
        """

    @abc.abstractmethod
    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Turn token ids into text."""

    @abc.abstractmethod
    def new_cache(self) -> Any:
        """Return an empty backend cache state."""

    @abc.abstractmethod
    def crop(self, cache: Any, length: int) -> None:
        """Drop every cached position from ``length`` on."""

    def embed_image(self, image: Any) -> Any:
        """Encode an image into rows (T, D) of the model's input embeddings."""
        raise ValueError(f'{self.config.name} is a text-only model and cannot take images '
                         f"with api='{self.name}'")

    def image_side(self) -> int:
        """Return the largest side (px) the image encoder works at; 0 when none or unknown."""
        return 0

    def embed_inputs(self, inputs: Inputs) -> Any:
        """Return the input embeddings (T, D) of ``inputs``."""
        raise NotImplementedError(f"api='{self.name}' does not expose input embeddings")

    def close(self) -> None:
        """Free the model (the default has nothing to free)."""

    def cache_state(self, cache: Any, length: int) -> Optional[bytes]:
        """Return the first ``length`` positions of ``cache`` as bytes (None: cannot save)."""
        return None

    def restore_cache(self, data: bytes, length: int) -> Any:
        """Return a new cache state holding ``length`` positions from ``cache_state`` bytes."""
        raise ValueError(f"api='{self.name}' cannot load a saved KV cache")


class PrefillStopped(Exception):
    """A prefill ended early because it was asked to stop; ``cache`` holds ``held`` positions."""

    def __init__(self, held: int):
        super().__init__(f'the prefill was stopped; the cache holds {held} positions')
        self.held = held


class LogitsBackend(Backend):
    """A model run step by step that returns the next-token logits; the loop samples."""

    @abc.abstractmethod
    def prefill(self, inputs: Inputs, cache: Any, start: int) -> np.ndarray:
        """Run ``inputs`` at positions ``start..`` into ``cache``; return last logits (V,)."""

    def prefill_until(self, inputs: Inputs, cache: Any, start: int,
                      stopped: Optional[Callable[[], bool]]) -> np.ndarray:
        """
        Run ``prefill``, ending it early once ``stopped()`` is True.

        An early end raises :class:`PrefillStopped`, with none of ``inputs`` left in the
        cache (``held`` says how many positions it keeps: ``start``, or fewer where the
        backend re-ran earlier ones). The default runs the prefill whole.
        """
        return self.prefill(inputs, cache, start)

    @abc.abstractmethod
    def decode_step(self, token: int, cache: Any, pos: int) -> np.ndarray:
        """Run one token at position ``pos``; return its logits (V,) float32."""

    # ---- scoring a continuation (functions/choice.py) ----------------------------------------
    def continuation_logits(self, tokens: Sequence[int], cache: Any, start: int) -> np.ndarray:
        """
        Return the logits (T, V) after each of ``tokens``, run at positions ``start..``.

        The tokens are a trial continuation of what ``cache`` holds: afterwards it holds the
        first ``start`` positions again. This default runs them one decode step at a time;
        a backend may run them in one batch.
        """
        rows = []
        try:
            for i, token in enumerate(tokens):
                rows.append(self.decode_step(int(token), cache, start + i))  # (V,)
        finally:
            self.crop(cache, start)
        return np.stack(rows) if rows else np.zeros((0, self.config.vocab_size), np.float32)

    def grammar_tokenizer(self) -> Any:
        """Return llguidance's view of this vocabulary (for constrained decoding)."""
        raise NotImplementedError(f"api='{self.name}' has no constrained decoding; use "
                                  "api='hf' or 'llama_cpp'")


@dataclass
class EngineRequest:
    """How a text engine should continue a prompt (the OpenAI completion fields)."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: Optional[List[str]] = None
    seed: Optional[int] = None
    min_tokens: Optional[int] = None


class TextEngineBackend(Backend):
    """An engine that samples by itself: it streams the continuation of a prompt."""

    @abc.abstractmethod
    def continuation(self, prompt: Sequence[int],
                     request: EngineRequest) -> Iterator[Tuple[Optional[int], Optional[str]]]:
        """
        Stream ``(token, finish_reason)`` that continue ``prompt`` (all positions so far).

        Each prompt extends the previous one (the cache's keys plus what was added), so an
        engine with a prefix cache reuses its work. ``token`` is None on a chunk with no new
        token; ``finish_reason`` (``'stop'``: the engine ended the reply, ``'length'``) is
        None until the last chunk. Closing the iterator cancels the request.
        """

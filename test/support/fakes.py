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
Small scripted backends for model-free tests: real library code over fake model arithmetic.

``Scripted`` and ``Engine`` speak a ten-word vocabulary (``WORDS``) for the generation
loop's tests; ``Chars`` has one token per character, so real chat templates render on it
and a ``NanoLLM``, a ``ChatHistory`` or a ``ChatSession`` runs on it without any model;
``Seeing`` is ``Chars`` with an image encoder.
"""

from dataclasses import replace
from typing import List, Optional, Sequence

import numpy as np
from ros2_nano_llm.models.backend import EngineRequest, LogitsBackend, TextEngineBackend
from ros2_nano_llm.models.base import ModelConfig

WORDS = ['<eos>', 'Hel', 'lo', ' [/', 'A]', ' more', ' world', '!', ' ', 'Hi']


class Words:
    """Token ids are indexes into WORDS; tokenizing matches the longest word first."""

    def tokenize(self, text, add_special_tokens=False, special=False):
        out = []
        while text:
            word = max((w for w in WORDS if text.startswith(w)), key=len)
            out.append(WORDS.index(word))
            text = text[len(word):]
        return out

    def detokenize(self, tokens, skip_special_tokens=False):
        return ''.join(WORDS[t] for t in tokens)

    def crop(self, cache, length):
        del cache[length:]

    def new_cache(self):
        return []


class Scripted(Words, LogitsBackend):
    """Always predicts the next word of ``script`` after the prompt."""

    name = 'scripted'

    def __init__(self, script: Sequence[str], limit: int = 64):
        self.config = ModelConfig('scripted', 'test', limit, len(WORDS), [0])
        self.script = [WORDS.index(w) for w in script]
        self.prompt_len = None

    @classmethod
    def load(cls, source, quantization=None, max_context_len=None, **kwargs):
        raise NotImplementedError

    def _logits(self, cache: List[int]) -> np.ndarray:
        i = len(cache) - self.prompt_len
        logits = np.zeros(len(WORDS), np.float32)
        logits[self.script[i] if i < len(self.script) else 0] = 10.0
        return logits

    def prefill(self, inputs, cache, start):
        if self.prompt_len is None:
            self.prompt_len = start + len(inputs)
        del cache[start:]
        cache.extend(inputs.tokens)
        return self._logits(cache)

    def decode_step(self, token, cache, pos):
        del cache[pos:]
        cache.append(token)
        return self._logits(cache)


class Engine(Words, TextEngineBackend):
    """Streams ``chunks`` (ids of WORDS), then finishes with ``finish``."""

    name = 'engine'

    def __init__(self, chunks: Sequence[str], finish: str = 'stop'):
        self.config = ModelConfig('engine', 'test', 64, 0, [])
        self.chunks, self.finish = [WORDS.index(c) for c in chunks], finish
        self.requests: List[EngineRequest] = []
        self.prompts: List[List[int]] = []

    @classmethod
    def load(cls, source, quantization=None, max_context_len=None, **kwargs):
        raise NotImplementedError

    def continuation(self, prompt, request):
        self.prompts.append(list(prompt))
        self.requests.append(request)
        for i, token in enumerate(self.chunks[:request.max_tokens]):
            last = i == len(self.chunks) - 1
            yield token, (self.finish if last else None)


class Chars(LogitsBackend):
    """
    One token per character (ids 0-255) and an end-of-reply token (256).

    Every reply is ``reply`` and then the end token. ``fail_at`` makes the decode step of
    that reply token raise (a backend error in mid-reply). ``prefills`` records how many
    positions each prefill got, so a test sees what the chat handed over.
    """

    name = 'chars'
    EOS = 256

    def __init__(self, reply: str = 'Fine, thanks.', limit: int = 512,
                 fail_at: Optional[int] = None):
        self.config = ModelConfig('chars', 'test', limit, self.EOS + 1, [self.EOS])
        self.reply, self.fail_at = reply, fail_at
        self.prefills: List[int] = []
        self._next = 0

    @classmethod
    def load(cls, source, quantization=None, max_context_len=None, **kwargs):
        raise NotImplementedError

    def tokenize(self, text, add_special_tokens=False, special=False):
        return [ord(c) % self.EOS for c in text]

    def detokenize(self, tokens, skip_special_tokens=False):
        return ''.join(chr(t) for t in tokens if t != self.EOS)

    def new_cache(self):
        return []

    def crop(self, cache, length):
        del cache[length:]

    def _logits(self) -> np.ndarray:
        script = self.tokenize(self.reply) + [self.EOS]
        logits = np.zeros(self.EOS + 1, np.float32)
        logits[script[min(self._next, len(script) - 1)]] = 10.0
        return logits

    def prefill(self, inputs, cache, start):
        del cache[start:]
        cache.extend(inputs.tokens)
        self.prefills.append(len(inputs))
        self._next = 0
        return self._logits()

    def decode_step(self, token, cache, pos):
        self._next += 1
        if self.fail_at is not None and self._next >= self.fail_at:
            raise RuntimeError('the accelerator went away')
        del cache[pos:]
        cache.append(token)
        return self._logits()


class Seeing(Chars):
    """``Chars`` that takes images: each embeds to ``rows`` rows; ``embedded`` counts them."""

    name = 'seeing'

    def __init__(self, rows: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.config = replace(self.config, name='seeing', has_vision=True)
        self.rows, self.embedded = rows, 0

    def embed_image(self, image):
        self.embedded += 1
        return np.full((self.rows, 8), float(self.embedded), np.float32)

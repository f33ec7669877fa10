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
"""Turning logits into the next token: penalties, temperature, top-p, sampling (numpy)."""

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token."""

    # neutral values (no scaling, no cut); NanoLLM.generate()'s defaults are the settings
    # table's (ros2_nano_llm/settings.py), the one place they are written
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0 and self.do_sample:
            raise ValueError(f'temperature must be > 0 when sampling, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.repetition_penalty <= 0:
            raise ValueError(
                f'repetition_penalty must be > 0 (1.0 disables it), got {self.repetition_penalty}')


def apply_repetition_penalty(logits: np.ndarray, context: Sequence[int],
                             penalty: float) -> np.ndarray:
    """Penalize every token already in ``context`` (the CTRL rule transformers uses)."""
    context = np.asarray(context, dtype=np.int64)
    if penalty == 1.0 or context.size == 0:
        return logits
    scores = logits[context]
    penalty = logits.dtype.type(penalty)
    out = logits.copy()
    out[context] = np.where(scores < 0, scores * penalty, scores / penalty)
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def logits_to_probs(logits: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """Return the temperature-scaled, nucleus-filtered distribution over the vocabulary."""
    logits = logits.astype(np.float64) / max(temperature, 1e-5)
    probs = _softmax(logits)
    if top_p < 1.0:
        order = np.argsort(-logits, kind='stable')
        sorted_probs = probs[order]
        # drop tokens once the mass before them already exceeds top_p (always keep the best)
        remove = (np.cumsum(sorted_probs) - sorted_probs) > top_p
        logits = logits.copy()
        logits[order[remove]] = -np.inf
        probs = _softmax(logits)
    return probs


def sample(logits: np.ndarray, params: SamplingParams, context: Optional[Sequence[int]] = None,
           banned: Iterable[int] = (), generator: Optional[np.random.Generator] = None) -> int:
    """Pick the next token id from last-position ``logits`` of shape (V,)."""
    logits = np.asarray(logits, dtype=np.float32)
    if context is not None:
        logits = apply_repetition_penalty(logits, context, params.repetition_penalty)
    banned = list(banned)
    if banned:
        logits = logits.copy()
        logits[banned] = -np.inf
    if not params.do_sample:
        return int(np.argmax(logits))
    probs = logits_to_probs(logits, params.temperature, params.top_p)
    rng = generator if generator is not None else np.random.default_rng()
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side='right'), len(cdf) - 1))

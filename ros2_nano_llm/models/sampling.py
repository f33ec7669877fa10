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
"""Turning logits into the next token: penalties, temperature, top-p, sampling."""

from dataclasses import dataclass
from typing import Iterable, Optional

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token."""

    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    repetition_penalty: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0 and self.do_sample:
            raise ValueError(f'temperature must be > 0 when sampling, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.repetition_penalty <= 0:
            raise ValueError(
                f'repetition_penalty must be > 0 (1.0 disables it), got {self.repetition_penalty}')


def apply_repetition_penalty(logits: torch.Tensor, context: torch.Tensor,
                             penalty: float) -> torch.Tensor:
    """Penalize every token already in ``context`` (the CTRL rule transformers uses)."""
    if penalty == 1.0 or context.numel() == 0:
        return logits
    scores = logits.gather(0, context)
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.scatter(0, context, scores)


def logits_to_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Return the temperature-scaled, nucleus-filtered distribution over the vocabulary."""
    logits = logits / max(temperature, 1e-5)
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop tokens once the mass before them already exceeds top_p (always keep the best)
        remove = (cum - torch.softmax(sorted_logits, dim=-1)) > top_p
        sorted_logits[remove] = float('-inf')
        logits = torch.full_like(logits, float('-inf')).scatter(0, sorted_idx, sorted_logits)
    return torch.softmax(logits, dim=-1)


def sample(logits: torch.Tensor, params: SamplingParams, context: Optional[torch.Tensor] = None,
           banned: Iterable[int] = (), generator: Optional[torch.Generator] = None) -> int:
    """Pick the next token id from last-position ``logits`` of shape (V,)."""
    logits = logits.float()
    if context is not None:
        logits = apply_repetition_penalty(logits, context, params.repetition_penalty)
    banned = list(banned)
    if banned:
        logits = logits.clone()
        logits[banned] = float('-inf')
    if not params.do_sample:
        return int(torch.argmax(logits))
    probs = logits_to_probs(logits, params.temperature, params.top_p)
    return int(torch.multinomial(probs, 1, generator=generator))

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
"""Sampling matches transformers' own logits processors."""

import pytest
from ros2_nano_llm.models.sampling import (apply_repetition_penalty, logits_to_probs, sample,
                                           SamplingParams)
import torch
from transformers import RepetitionPenaltyLogitsProcessor, TopPLogitsWarper


def test_repetition_penalty_equals_transformers():
    torch.manual_seed(0)
    logits = torch.randn(50)
    context = torch.tensor([3, 7, 7, 20, 49])
    ours = apply_repetition_penalty(logits, context, 1.7)
    theirs = RepetitionPenaltyLogitsProcessor(1.7)(context[None], logits[None].clone())[0]
    torch.testing.assert_close(ours, theirs)
    assert torch.equal(apply_repetition_penalty(logits, context, 1.0), logits)


def test_top_p_keeps_the_same_tokens_as_transformers():
    torch.manual_seed(1)
    logits = torch.randn(200) * 3
    probs = logits_to_probs(logits, 0.8, 0.9)
    theirs = TopPLogitsWarper(0.9)(None, (logits / 0.8)[None])[0]
    assert torch.equal(probs > 0, torch.isfinite(theirs))
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))


def test_greedy_banned_and_seeded_sampling():
    logits = torch.tensor([0.1, 5.0, 4.9, -1.0])
    assert sample(logits, SamplingParams()) == 1
    assert sample(logits, SamplingParams(), banned=[1]) == 2
    params = SamplingParams(do_sample=True, temperature=1.0, top_p=1.0)
    draws = [sample(logits, params, generator=torch.Generator().manual_seed(s)) for s in range(40)]
    assert set(draws) >= {1, 2}
    again = [sample(logits, params, generator=torch.Generator().manual_seed(s)) for s in range(40)]
    assert draws == again


@pytest.mark.parametrize('kwargs', [{'do_sample': True, 'temperature': 0}, {'top_p': 0},
                                    {'top_p': 1.5}, {'repetition_penalty': 0}])
def test_bad_parameters_are_clear_errors(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)

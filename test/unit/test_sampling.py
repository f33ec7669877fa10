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
"""Sampling (numpy) matches transformers' own logits processors."""

import numpy as np
import pytest
from ros2_nano_llm.models.sampling import (apply_repetition_penalty, logits_to_probs, sample,
                                           SamplingParams)

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')


def test_repetition_penalty_equals_transformers():
    logits = np.random.default_rng(0).standard_normal(50).astype(np.float32)
    context = np.array([3, 7, 7, 20, 49])
    ours = apply_repetition_penalty(logits, context, 1.7)
    processor = transformers.RepetitionPenaltyLogitsProcessor(1.7)
    theirs = processor(torch.from_numpy(context)[None], torch.from_numpy(logits)[None].clone())
    np.testing.assert_array_equal(ours, theirs[0].numpy())  # bit for bit
    assert apply_repetition_penalty(logits, context, 1.0) is logits


def test_top_p_keeps_the_same_tokens_as_transformers():
    logits = (np.random.default_rng(1).standard_normal(200) * 3).astype(np.float32)
    probs = logits_to_probs(logits, 0.8, 0.9)
    theirs = transformers.TopPLogitsWarper(0.9)(None, torch.from_numpy(logits / 0.8)[None])[0]
    np.testing.assert_array_equal(probs > 0, torch.isfinite(theirs).numpy())
    assert probs.sum() == pytest.approx(1.0)


def test_greedy_banned_and_seeded_sampling():
    logits = np.array([0.1, 5.0, 4.9, -1.0], dtype=np.float32)
    assert sample(logits, SamplingParams()) == 1
    assert sample(logits, SamplingParams(), banned=[1]) == 2
    params = SamplingParams(do_sample=True, temperature=1.0, top_p=1.0)
    draws = [sample(logits, params, generator=np.random.default_rng(s)) for s in range(40)]
    assert set(draws) >= {1, 2}
    again = [sample(logits, params, generator=np.random.default_rng(s)) for s in range(40)]
    assert draws == again


def test_a_filtered_token_is_never_drawn():
    logits = np.array([10.0, 9.0, -np.inf, 0.0], dtype=np.float32)
    params = SamplingParams(do_sample=True, temperature=1.0, top_p=0.5)
    assert {sample(logits, params, generator=np.random.default_rng(s)) for s in range(50)} == {0}


def test_greedy_equals_torch_argmax_on_ties():
    logits = np.array([1.0, 3.0, 3.0, 2.0], dtype=np.float32)
    assert sample(logits, SamplingParams()) == int(torch.argmax(torch.from_numpy(logits))) == 1


@pytest.mark.parametrize('kwargs', [{'do_sample': True, 'temperature': 0}, {'top_p': 0},
                                    {'top_p': 1.5}, {'repetition_penalty': 0}])
def test_bad_parameters_are_clear_errors(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)

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
GQA-packed attention: the same logits as transformers' own sdpa, and really in use.

Tiny random models with grouped-query attention (4 query heads on 2 key/value heads) run a
prefill after cached tokens, a decode step and a prefill from an empty cache with both
implementations; every logit must match.
"""

import pytest
from ros2_nano_llm.models.attention import NAME, packed_sdpa_attention, use_packed_attention
import torch
from transformers import AutoModelForCausalLM, DynamicCache

pytestmark = pytest.mark.integration


def _steps(model, ids):
    """Return the logits of: 40 tokens from empty, 24 more after them, then one more."""
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        return [model(input_ids=ids[:, a:b], past_key_values=cache, use_cache=True).logits
                for a, b in ((0, 40), (40, 64), (64, 65))]


@pytest.mark.parametrize('arch', ['llama', 'qwen2', 'mistral', 'phi3', 'gemma'])
def test_packed_attention_gives_the_same_logits_as_sdpa(tiny_model_dir, arch):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch)).eval()
    assert model.config._attn_implementation == 'sdpa'
    ids = torch.randint(0, model.config.vocab_size, (1, 65), generator=torch.Generator()
                        .manual_seed(1))
    stock = _steps(model, ids)
    assert use_packed_attention(model) and model.config._attn_implementation == NAME
    packed = _steps(model, ids)
    for a, b in zip(stock, packed):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_the_packed_path_runs_for_a_prefill_after_cached_tokens(tiny_model_dir):
    # called directly on a real GQA layer with a real mask shape, against sdpa with the
    # key/value heads repeated by hand
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir('llama')).eval()
    layer = model.model.layers[0].self_attn
    assert layer.num_key_value_groups == 2
    gen = torch.Generator().manual_seed(2)
    query = torch.randn(1, 4, 6, 16, generator=gen)
    key, value = (torch.randn(1, 2, 10, 16, generator=gen) for _ in range(2))
    mask = torch.ones(6, 10, dtype=torch.bool).tril(4)[None, None]  # 4 cached + 6 new
    out, _ = packed_sdpa_attention(layer, query, key, value, mask, scaling=0.25)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(2, 1), value.repeat_interleave(2, 1), attn_mask=mask,
        scale=0.25).transpose(1, 2)
    assert out.shape == (1, 6, 4, 16)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_the_hf_backend_uses_it_on_cpu(tiny_llama):
    assert tiny_llama.backend.model.config._attn_implementation == NAME


def test_a_model_on_eager_attention_is_left_alone(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir('llama'),
                                                 attn_implementation='eager')
    assert use_packed_attention(model) is False
    assert model.config._attn_implementation == 'eager'

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
Tiny random-weight models built from configs, for tests and benchmarks (no hub needed).

They share the embedded SmolLM2 tokenizer, so their chats use real text and templates.
"""

import os
from typing import Any

from ros2_nano_llm.models.loading import cached_conversion, default_model_path
import torch

TINY_ARCHS = {
    'llama': ('LlamaConfig', 'LlamaForCausalLM', {}),
    'qwen2': ('Qwen2Config', 'Qwen2ForCausalLM', {}),
    'mistral': ('MistralConfig', 'MistralForCausalLM', {'sliding_window': None}),
    'phi3': ('Phi3Config', 'Phi3ForCausalLM', {'pad_token_id': 0}),
    'gemma': ('GemmaConfig', 'GemmaForCausalLM', {'head_dim': 16}),
}


def load_smollm2_tokenizer() -> Any:
    """Return the SmolLM2 tokenizer of the embedded GGUF (its weights are never converted)."""
    from transformers import AutoTokenizer
    gguf = default_model_path()
    converted = cached_conversion(gguf)
    if converted:  # the float copy made by HFBackend holds the same tokenizer, loads faster
        return AutoTokenizer.from_pretrained(converted)
    folder, name = os.path.split(gguf)
    return AutoTokenizer.from_pretrained(folder, gguf_file=name)


def build_tiny_model(out_dir: str, arch: str = 'llama', seed: int = 0, layers: int = 2,
                     hidden: int = 64, max_positions: int = 4096) -> str:
    """Save a tiny random-weight ``arch`` model with the SmolLM2 tokenizer to ``out_dir``."""
    import transformers
    if arch not in TINY_ARCHS:
        raise ValueError(f'unknown tiny arch {arch!r}; choose one of {sorted(TINY_ARCHS)}')
    config_name, model_name, extra = TINY_ARCHS[arch]
    tokenizer = load_smollm2_tokenizer()
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False, **extra)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    # random init is near-uniform; widen the output so greedy choices are well separated
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(8.0)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir

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
Tiny random-weight LLaVA checkpoints for tests: real transformers classes, no download.

``build_tiny_llava(out_dir)`` saves a LLaVA 1.5 model (CLIP vision tower, Llama text
model, the SmolLM2 tokenizer plus an ``<image>`` token) and its processor, so that
``AutoModelForImageTextToText.from_pretrained(out_dir)`` and
``AutoProcessor.from_pretrained(out_dir)`` load it offline. ``build_tiny_llava_next``
does the same for LLaVA-NeXT (1.6, any-resolution tiles and image newlines).
"""

import copy
import os
from typing import Any, Optional

import torch

from .tiny import load_smollm2_tokenizer

IMAGE_TOKEN = '<image>'
IMAGE_SIZE = 32  # pixels per side seen by the vision tower
PATCH_SIZE = 8  # -> (32 / 8) ** 2 = 16 patches, 16 image tokens (CLS dropped)
SEED = 0

# ChatML (SmolLM2's format) where an image entry of a message renders as `<image>`.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build_tiny_llava(out_dir: str, tokenizer: Optional[Any] = None) -> str:
    """
    Build and save a tiny random-weight LLaVA 1.5 model plus processor; return ``out_dir``.

    ``out_dir`` is created if needed (files in it are overwritten). ``tokenizer`` is the
    SmolLM2 tokenizer to extend with ``<image>`` (a copy is changed); when None it is
    loaded from the embedded GGUF. The model has 16 image tokens per image, float32.
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    tokenizer = _with_image_token(tokenizer)
    config = LlavaConfig(
        vision_config=_vision_config(), text_config=_text_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_layer=-2, vision_feature_select_strategy='default',
        tie_word_embeddings=True)
    image_processor = CLIPImageProcessorPil(
        size={'shortest_edge': IMAGE_SIZE}, crop_size={'height': IMAGE_SIZE, 'width': IMAGE_SIZE})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy='default', num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE)
    return _save(LlavaForConditionalGeneration, config, processor, out_dir)


def build_tiny_llava_next(out_dir: str, tokenizer: Optional[Any] = None) -> str:
    """
    Build and save a tiny random-weight LLaVA-NeXT (1.6) model plus processor.

    Images are tiled on a grid of 32x32 crops (up to 64x64) plus a downscaled overview,
    with an image-newline row marker, exactly as the full-size 1.6 models do.
    """
    from transformers import (LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextProcessor)
    from transformers.models.llava_next.image_processing_pil_llava_next import (
        LlavaNextImageProcessorPil)
    tokenizer = _with_image_token(tokenizer)
    pinpoints = [[IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE],
                 [2 * IMAGE_SIZE, 2 * IMAGE_SIZE]]
    config = LlavaNextConfig(
        vision_config=_vision_config(), text_config=_text_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_grid_pinpoints=pinpoints, vision_feature_layer=-2,
        vision_feature_select_strategy='default', tie_word_embeddings=True)
    image_processor = LlavaNextImageProcessorPil(
        size={'shortest_edge': IMAGE_SIZE}, crop_size={'height': IMAGE_SIZE, 'width': IMAGE_SIZE},
        image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy='default', num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE)
    return _save(LlavaNextForConditionalGeneration, config, processor, out_dir)


def _save(model_class: Any, config: Any, processor: Any, out_dir: str) -> str:
    torch.manual_seed(SEED)
    model = model_class(config).to(torch.float32).eval()
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _vision_config() -> Any:
    from transformers import CLIPVisionConfig
    return CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32)


def _text_config(tokenizer: Any) -> Any:
    from transformers import LlamaConfig
    # a wider init than the default 0.02 makes greedy choices decisive, so cached and
    # recomputed runs cannot differ by a near-tie between two tokens
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        initializer_range=0.2)


def _with_image_token(tokenizer: Optional[Any]) -> Any:
    """Return a copy of the SmolLM2 tokenizer that knows the ``<image>`` special token."""
    tokenizer = copy.deepcopy(tokenizer if tokenizer is not None else load_smollm2_tokenizer())
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({'additional_special_tokens': [IMAGE_TOKEN]})
    return tokenizer

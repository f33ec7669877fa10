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
Image -> rows of the language model's input embeddings, through transformers' own code.

``HFImageEncoder.embed(rgb)`` runs the checkpoint's image processor and the model's own
``get_image_features`` (vision tower, feature layer and selection, projector and, for
LLaVA-NeXT, tiling, unpadding and image-newline packing). The result holds exactly the
rows the model's forward would scatter into the placeholder tokens of one ``<image>``, so
prefilling ``[text before] + rows + [text after]`` as ``inputs_embeds`` equals the model's
own forward on the processor-expanded ``input_ids`` and ``pixel_values``.
"""

import inspect
import logging
from typing import Any, Dict, Optional, Set

import numpy as np
from PIL import Image as PILImage
import torch

from .convert import to_rgb_array

log = logging.getLogger(__name__)

# Model types whose image path was checked token-for-token against the model's forward.
VERIFIED_MODEL_TYPES = ('llava', 'llava_next')


class HFImageEncoder:
    """Encode images for one loaded transformers vision-language model (stateless)."""

    def __init__(self, model: Any, processor: Any):
        self.model = model
        self.processor = processor
        self.image_processor = getattr(processor, 'image_processor', None) or processor
        config = model.config
        self.image_token = getattr(processor, 'image_token', None) or '<image>'
        token_id = getattr(processor, 'image_token_id', None)
        if token_id is None:
            token_id = getattr(config, 'image_token_id', None)
        if token_id is None:
            token_id = getattr(config, 'image_token_index', None)
        self.image_token_id: Optional[int] = None if token_id is None else int(token_id)
        self._feature_args = _accepted_args(model)
        embeddings = model.get_input_embeddings().weight
        self.embed_dim = int(embeddings.shape[1])
        self.device = embeddings.device
        self.dtype = embeddings.dtype

    def image_side(self) -> int:
        """Return the largest side (px) the processor resizes or crops to; 0 when unknown."""
        # transformers' processors say their sizes in several shapes: a dict, an object, a
        # list of grid pinpoints (LLaVA-NeXT); these are the processor's fields, not a probe
        # of our own interfaces
        processor, sides = self.image_processor, []
        for size in (getattr(processor, 'size', None), getattr(processor, 'crop_size', None)):
            for key in ('shortest_edge', 'height', 'width'):
                value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
                if isinstance(value, int):
                    sides.append(value)
        for pinpoint in getattr(processor, 'image_grid_pinpoints', None) or ():
            sides.extend(int(v) for v in pinpoint)
        return max(sides, default=0)

    def preprocess(self, rgb: Any) -> Dict[str, torch.Tensor]:
        """
        Run the image processor on one image; return the tensors ``get_image_features`` takes.

        ``rgb`` is an (H, W, 3) uint8 RGB array (anything ``to_rgb_array`` reads is
        converted first). Tensors are moved to the model's device; pixel values take the
        vision tower's dtype.
        """
        image = PILImage.fromarray(_as_rgb(rgb))
        try:
            batch = self.image_processor(images=[image], return_tensors='pt')
        except Exception as err:  # noqa: B902 - processors raise many types on bad input
            raise ValueError(f'the image processor could not read the image: {err}') from err
        out = {}
        for key, value in batch.items():
            if key not in self._feature_args or not isinstance(value, torch.Tensor):
                continue
            if value.is_floating_point():
                value = value.to(self.device, self._vision_dtype())
            out[key] = value.to(self.device)
        if 'pixel_values' not in out:
            raise RuntimeError(f'{type(self.image_processor).__name__} returned no pixel_values')
        return out

    @torch.no_grad()  # not inference_mode: the rows may meet autograd code later
    def embed(self, rgb: Any) -> torch.Tensor:
        """Encode one image; return (T, D) rows on the model's device in its embedding dtype."""
        features = self.model.get_image_features(**self.preprocess(rgb))
        if hasattr(features, 'pooler_output') and features.pooler_output is not None:
            features = features.pooler_output  # transformers 5: list of per-image (t, D)
        if isinstance(features, (list, tuple)):
            features = torch.cat([f.reshape(-1, f.shape[-1]) for f in features], dim=0)
        rows = features.reshape(-1, features.shape[-1])  # (T, D)
        if rows.shape[-1] != self.embed_dim:
            raise RuntimeError(f'image features have width {rows.shape[-1]}, the language model '
                               f'embeds {self.embed_dim}')
        return rows.to(self.device, self.dtype)

    def image_token_count(self, rgb: Any) -> int:
        """
        Return how many embedding rows (placeholder tokens) one image takes.

        Uses the processor's own placeholder expansion (no model forward) when it has a
        tokenizer, else encodes the image.
        """
        tokenizer = getattr(self.processor, 'tokenizer', None)
        if tokenizer is None or self.image_token_id is None:
            return int(self.embed(rgb).shape[0])
        image = PILImage.fromarray(_as_rgb(rgb))
        batch = self.processor(text=self.image_token, images=[image], return_tensors='pt')
        return int((batch['input_ids'] == self.image_token_id).sum())

    def _vision_dtype(self) -> torch.dtype:
        tower = getattr(self.model, 'vision_tower', None)
        if tower is None:
            tower = getattr(getattr(self.model, 'model', None), 'vision_tower', None)
        params = tower.parameters() if tower is not None else self.model.parameters()
        return next(params).dtype


def load_vision(hf_model: Any, source: str, processor: Any = None) -> Optional[HFImageEncoder]:
    """
    Return an ``HFImageEncoder`` for a vision-language model, or None for a text-only one.

    ``hf_model`` is the loaded transformers model (e.g. from ``AutoModelForImageTextToText``),
    ``source`` the local directory (or cached hub id) the processor is loaded from unless
    ``processor`` is given. Raises ValueError for vision models whose image positions this
    backend cannot reproduce (multimodal rotary positions, e.g. Qwen2-VL) and RuntimeError
    when the processor cannot be loaded.
    """
    config = hf_model.config
    if getattr(config, 'vision_config', None) is None or \
            not callable(getattr(hf_model, 'get_image_features', None)):
        return None
    model_type = getattr(config, 'model_type', '?')
    inner = getattr(hf_model, 'model', None)
    if hasattr(hf_model, 'get_rope_index') or hasattr(inner, 'get_rope_index'):
        raise ValueError(
            f'{model_type} models place image tokens with multimodal rotary positions, which '

            "api='hf' chat does not support; use a LLaVA-style model (llava, llava_next)")
    if processor is None:
        from transformers import AutoProcessor
        try:
            processor = AutoProcessor.from_pretrained(source)
        except Exception as err:  # noqa: B902 - any failure means the same to the user
            raise RuntimeError(f'cannot load the image processor of {source}: {err}') from err
    image_processor = getattr(processor, 'image_processor', None) or processor
    if not callable(getattr(image_processor, 'preprocess', None)):
        raise RuntimeError(f'{source} has no image processor ({type(processor).__name__} was '
                           'loaded); the directory needs its preprocessor/processor config')
    if model_type not in VERIFIED_MODEL_TYPES:
        log.warning('image input for %s models is not verified (verified: %s); answers may '
                    'differ from the reference implementation', model_type,
                    ', '.join(VERIFIED_MODEL_TYPES))
    return HFImageEncoder(hf_model, processor)


def _accepted_args(model: Any) -> Set[str]:
    """Return the argument names ``get_image_features`` takes (outer and inner model)."""
    names: Set[str] = set()
    for owner in (model, getattr(model, 'model', None)):
        fn = getattr(owner, 'get_image_features', None)
        if fn is None:
            continue
        params = inspect.signature(fn).parameters.values()
        names.update(p.name for p in params
                     if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != 'self')
    return names or {'pixel_values'}


def _as_rgb(rgb: Any) -> np.ndarray:
    if isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 \
            and rgb.shape[2] == 3:
        return np.ascontiguousarray(rgb)
    return to_rgb_array(rgb)

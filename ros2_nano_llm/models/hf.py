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
"""The transformers/torch backend (the ``hf`` extra: torch, transformers)."""

import logging
import os
import shutil
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch

from .backend import LogitsBackend, PrefillStopped
from .base import Inputs, ModelConfig
from .loading import cached_conversion, converted_dir, download, ModelSource

log = logging.getLogger(__name__)

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


class HFBackend(LogitsBackend):
    """A transformers model run step by step with a caller-owned ``DynamicCache``."""

    name = 'hf'

    def __init__(self, model: Any, tokenizer: Any, config: ModelConfig, vision: Any = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.vision = vision
        self.device = next(model.parameters()).device
        self._embed_tokens = model.get_input_embeddings()
        from transformers.modeling_layers import GradientCheckpointingLayer
        # the decoder layers (transformers' base class of them): a stopped prefill ends at one
        self._layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]

    @classmethod
    def load(cls, source: ModelSource, quantization: Optional[str] = None,
             max_context_len: Optional[int] = None, device: Optional[str] = None,
             **kwargs) -> 'HFBackend':
        """Load a model directory, GGUF file or hub id with transformers."""
        from transformers import AutoConfig, AutoTokenizer
        path = download(source.path) if source.kind == 'hub' else source.path
        if source.kind == 'gguf':
            path = cached_conversion(source.path) or convert_gguf(source.path)
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        dtype = _dtype(quantization, device)
        hf_config = AutoConfig.from_pretrained(path)
        vision_model = hasattr(hf_config, 'vision_config')
        if vision_model:
            from transformers import AutoModelForImageTextToText as AutoModel
        else:
            from transformers import AutoModelForCausalLM as AutoModel
        model = AutoModel.from_pretrained(path, dtype=dtype).to(device).eval()
        if device == 'cpu':
            # a prefill after cached tokens skips repeating the key/value heads (measured on CPU)
            from .attention import use_packed_attention
            use_packed_attention(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        vision = None
        if vision_model:
            from ..vision.encoders import load_vision
            vision = load_vision(model, path)
        text_config = hf_config.get_text_config()
        limit = getattr(text_config, 'max_position_embeddings', None) or 2048
        config = ModelConfig(
            name=source.name, model_type=hf_config.model_type,
            max_context_len=min(max_context_len or limit, limit),
            vocab_size=model.get_output_embeddings().weight.shape[0],
            eos_token_ids=_eos_ids(model, tokenizer), bos_token_id=tokenizer.bos_token_id,
            has_vision=vision is not None, tokenizer_chat_template=tokenizer.chat_template,
            path=path)
        log.info('loaded %s (%s, %s, %s, attention %s) from %s', source.name, config.model_type,
                 device, dtype, model.config._attn_implementation, path)
        return cls(model, tokenizer, config, vision)

    def grammar_tokenizer(self) -> Any:
        """Return llguidance's tokenizer, built from the transformers tokenizer."""
        import llguidance.hf
        return llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.config.vocab_size,
                                            eos_token=list(self.config.eos_token_ids) or None)

    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = False) -> List[int]:
        """Turn text into token ids; ``<|im_end|>`` and the like are markup only if ``special``."""
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens,
                                     split_special_tokens=not special)

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Turn token ids into text."""
        return self.tokenizer.decode(list(tokens), skip_special_tokens=skip_special_tokens)

    def new_cache(self) -> Any:
        """Return an empty ``DynamicCache`` laid out for this model."""
        from transformers import DynamicCache
        return DynamicCache(config=self.model.config.get_text_config())

    @torch.inference_mode()
    def prefill(self, inputs: Inputs, cache: Any, start: int) -> np.ndarray:
        """Run the prompt at positions ``start..`` into ``cache``; return the last logits (V,)."""
        n = len(inputs)
        if n == 0:
            raise ValueError('nothing to prefill')
        cache_position = torch.arange(start, start + n, device=self.device)  # (T,)
        if inputs.is_text:
            ids = torch.tensor([inputs.tokens], device=self.device)  # (1, T)
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True,
                             cache_position=cache_position, logits_to_keep=1)
        else:
            embeds = self.embed_inputs(inputs).unsqueeze(0)  # (1, T, D)
            out = self.model(inputs_embeds=embeds, past_key_values=cache, use_cache=True,
                             cache_position=cache_position, logits_to_keep=1)
        return _to_numpy(out.logits[0, -1])  # (V,)

    def prefill_until(self, inputs: Inputs, cache: Any, start: int,
                      stopped: Optional[Callable[[], bool]]) -> np.ndarray:
        """Run ``prefill``; ``stopped()`` is checked before each decoder layer runs."""
        if stopped is None:
            return self.prefill(inputs, cache, start)

        def check(_module: Any, _args: Any) -> None:
            if stopped():
                raise PrefillStopped(start)

        hooks = [layer.register_forward_pre_hook(check) for layer in self._layers]
        try:
            return self.prefill(inputs, cache, start)
        except PrefillStopped:
            _crop_layers(cache, start)  # the layers before the stop hold the new positions
            raise
        finally:
            for hook in hooks:
                hook.remove()

    @torch.inference_mode()
    def decode_step(self, token: int, cache: Any, pos: int) -> np.ndarray:
        """Run one token at position ``pos``; return its logits (V,)."""
        ids = torch.tensor([[token]], device=self.device)  # (1, 1)
        out = self.model(input_ids=ids, past_key_values=cache, use_cache=True,
                         cache_position=torch.tensor([pos], device=self.device),
                         logits_to_keep=1)
        return _to_numpy(out.logits[0, -1])  # (V,)

    # ---- scoring a continuation (functions/choice.py) ----------------------------------------
    @torch.inference_mode()
    def continuation_logits(self, tokens: Sequence[int], cache: Any, start: int) -> np.ndarray:
        """Return the logits (T, V) after each of ``tokens`` at ``start..``, in one batch."""
        if not tokens:
            return np.zeros((0, self.config.vocab_size), np.float32)
        ids = torch.tensor([[int(t) for t in tokens]], device=self.device)  # (1, T)
        positions = torch.arange(start, start + len(tokens), device=self.device)  # (T,)
        try:
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True,
                             cache_position=positions)
        finally:
            self.crop(cache, start)  # a trial: the cache holds what it held before
        return out.logits[0].float().cpu().numpy()  # (T, V)

    def crop(self, cache: Any, length: int) -> None:
        """Drop every cached position from ``length`` on."""
        current = cache.get_seq_length()
        if length <= 0:
            cache.reset()
        elif length < current:
            cache.crop(length - current)  # transformers 5: a negative count of tokens to drop

    def cache_state(self, cache: Any, length: int) -> Optional[bytes]:
        """Return the first ``length`` positions' key/value tensors as safetensors bytes."""
        from safetensors.torch import save
        if length <= 0 or length > cache.get_seq_length():
            return None
        tensors = {}
        for i, layer in enumerate(cache.layers):  # keys, values: (B, n_kv, T, hs)
            tensors[f'k{i}'] = layer.keys[..., :length, :].contiguous().cpu()
            tensors[f'v{i}'] = layer.values[..., :length, :].contiguous().cpu()
        return save(tensors)

    def restore_cache(self, data: bytes, length: int) -> Any:
        """Return a new ``DynamicCache`` holding ``length`` positions from ``cache_state``."""
        from safetensors.torch import load
        tensors = load(bytes(data))
        cache = self.new_cache()
        layers = self.model.config.get_text_config().num_hidden_layers
        if len(tensors) != 2 * layers:
            raise ValueError(f'the saved cache has {len(tensors) // 2} layers, '
                             f'the model {layers}')
        dtype = self._embed_tokens.weight.dtype
        for i in range(layers):
            k, v = tensors.get(f'k{i}'), tensors.get(f'v{i}')
            if k is None or v is None or k.shape != v.shape or k.dim() != 4 or \
                    k.shape[2] != length or k.dtype != dtype:
                raise ValueError(f'the saved cache layer {i} does not fit this model')
            cache.update(k.to(self.device), v.to(self.device), i)
        return cache

    def embed_inputs(self, inputs: Inputs) -> torch.Tensor:
        """Return the input embeddings (T, D) of mixed token/embedding segments."""
        parts = []
        for seg in inputs.segments:
            if isinstance(seg, list):
                parts.append(self._embed_tokens(torch.tensor(seg, device=self.device)))  # (t, D)
            else:
                seg = torch.as_tensor(seg)  # numpy rows are welcome too
                parts.append(seg.to(self.device, self._embed_tokens.weight.dtype))  # (t, D)
        return torch.cat(parts, dim=0)

    def image_side(self) -> int:
        """Return the largest side (px) the image encoder works at; 0 for a text model."""
        return self.vision.image_side() if self.vision is not None else 0

    def embed_image(self, image: Any) -> torch.Tensor:
        """Encode an image into rows of the language model's embedding space (T, D)."""
        if self.vision is None:
            raise ValueError(f'{self.config.name} is a text-only model and cannot take images')
        from ..vision.convert import to_rgb_array
        with torch.inference_mode():
            return self.vision.embed(to_rgb_array(image))


def _crop_layers(cache: Any, length: int) -> None:
    # layer by layer: after a forward that ended part-way they hold different lengths
    for layer in cache.layers:
        extra = layer.get_seq_length() - length
        if extra > 0:
            layer.crop(-extra)


def _to_numpy(logits: torch.Tensor) -> np.ndarray:
    # the generation loop samples with numpy: the same float32 values, on the CPU
    return logits.float().cpu().numpy()  # (V,)


def convert_gguf(gguf_path: str) -> str:
    """Convert a GGUF file to a float transformers checkpoint in the conversion cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = converted_dir(gguf_path)
    log.warning('converting %s to float weights once (cached in %s)', gguf_path, out)
    folder, name = os.path.split(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # the weights are already de-quantized; drop the GGUF marker so they can be saved
    model.hf_quantizer = None
    if hasattr(model.config, 'quantization_config'):
        del model.config.quantization_config
    tmp = out + f'.tmp{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    open(os.path.join(tmp, '.complete'), 'w').close()
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _dtype(quantization: Optional[str], device: str) -> torch.dtype:
    if quantization is None:
        return torch.float32 if device == 'cpu' else torch.float16
    if quantization not in DTYPES:
        raise ValueError(f"quantization {quantization!r} is not supported by api='hf'; "
                         f"use one of {sorted(DTYPES)} (or api='mlc' / 'llama_cpp' for "
                         'quantized weights)')
    return DTYPES[quantization]


def _eos_ids(model: Any, tokenizer: Any) -> List[int]:
    ids = []
    gen = getattr(model, 'generation_config', None)
    eos = getattr(gen, 'eos_token_id', None) if gen is not None else None
    for value in (eos if isinstance(eos, (list, tuple)) else [eos]) + [tokenizer.eos_token_id]:
        if value is not None and value not in ids:
            ids.append(int(value))
    return ids

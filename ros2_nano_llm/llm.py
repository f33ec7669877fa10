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
"""NanoLLM: load a model, then generate streaming replies on its own worker thread."""

import logging
import queue
import threading
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

from .chat.stream import StreamingResponse
from .constraints import Grammars
from .generation import GenerationJob, run
from .models import get_backend
from .models.base import Backend, Inputs, KVCache
from .models.loading import resolve
from .models.sampling import SamplingParams

log = logging.getLogger(__name__)

InputLike = Union[str, Sequence[int], np.ndarray, torch.Tensor, Inputs]


class NanoLLM:
    """A loaded language model with the NanoLLM generation API."""

    def __init__(self, backend: Backend, api: str):
        self.backend = backend
        self.api = api
        self.config = backend.config
        self.stats: Dict[str, float] = {}
        self._jobs: 'queue.Queue[Optional[GenerationJob]]' = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.grammars = Grammars(backend)  # tool_choice / response_format constraints

    @staticmethod
    def from_pretrained(model: str, api: Optional[str] = None, quantization: Optional[str] = None,
                        max_context_len: Optional[int] = None, **kwargs) -> 'NanoLLM':
        """
        Load ``model``: a local directory, a .gguf file, a hub id, or ``'default'``.

        ``api`` picks the backend (``'hf'`` when None). ``max_context_len`` caps the context
        window; other keyword arguments go to the backend.
        """
        api = api or 'hf'
        backend_cls = get_backend(api)
        # a backend may name models its own way (a server's model names)
        source = backend_cls.resolve(model) if hasattr(backend_cls, 'resolve') else resolve(model)
        backend = backend_cls.load(source, quantization=quantization,
                                   max_context_len=max_context_len, **kwargs)
        return NanoLLM(backend, api)

    # ---- model facts -------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """Return the backend's tokenizer object."""
        return getattr(self.backend, 'tokenizer', None)

    @property
    def has_vision(self) -> bool:
        """Return True when the model takes images."""
        return self.config.has_vision

    @property
    def name(self) -> str:
        """Return the model's name."""
        return self.config.name

    def tokenize(self, text: str, add_special_tokens: bool = False) -> np.ndarray:
        """Return the token ids of ``text`` as a 1-D int64 array."""
        return np.asarray(self.backend.tokenize(text, add_special_tokens), dtype=np.int64)

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Return the text of ``tokens``."""
        return self.backend.detokenize([int(t) for t in tokens], skip_special_tokens)

    def embed_text(self, text: str) -> torch.Tensor:
        """Return the input embeddings (T, D) of ``text``."""
        embed = getattr(self.backend, 'embed_inputs', None)
        if embed is None:
            raise NotImplementedError(f"api='{self.api}' does not expose input embeddings")
        return embed(Inputs.from_tokens(self.backend.tokenize(text)))

    def embed_image(self, image: Any) -> torch.Tensor:
        """Return the embedding (T, D) of an image (vision models only)."""
        embed = getattr(self.backend, 'embed_image', None)
        if embed is None or not self.has_vision:
            raise ValueError(f'{self.name} is a text-only model and cannot take images')
        return embed(image)

    def new_cache(self) -> KVCache:
        """Return an empty KV cache for this model."""
        return KVCache(self.backend)

    # ---- generation --------------------------------------------------------------------
    def generate(self, inputs: InputLike, streaming: bool = True, max_new_tokens: int = 128,
                 min_new_tokens: int = -1, do_sample: bool = False, temperature: float = 0.7,
                 top_p: float = 0.95, repetition_penalty: float = 1.0,
                 stop_tokens: Optional[Sequence[Union[int, str]]] = None,
                 kv_cache: Optional[KVCache] = None, functions: Any = None,
                 template: Any = None, reply_prefix: Optional[str] = None,
                 seed: Optional[int] = None, timeout: Optional[float] = 300.0,
                 tool_choice: Optional[str] = None, response_format: Optional[dict] = None,
                 **kwargs) -> Union[StreamingResponse, str]:
        """
        Generate a reply to ``inputs`` after what ``kv_cache`` holds.

        ``inputs`` is text, token ids or an ``Inputs`` (from ``ChatHistory.embed_chat()``).
        ``functions`` (bot functions) run when the reply calls them; their results are fed
        back in the ``template``'s format (default: the model's). ``reply_prefix`` is text
        the reply must start with; ``seed`` makes sampling repeatable. ``tool_choice``
        (OpenAI's meanings; hf and llama_cpp constrain the calls with a grammar): ``'auto'``
        (default: free text, a call the model starts is completed validly), ``'required'``
        (the reply starts with a call), a function's name (that one is called) or
        ``'none'`` (no calls). ``response_format`` constrains the reply to a JSON schema
        (``{'type': 'json_schema', 'json_schema': {'schema': ...}}``), a regex
        (``{'type': 'regex', 'regex': ...}``) or a Lark grammar (``{'type': 'grammar',
        'grammar': ...}``). Returns a
        ``StreamingResponse`` that fills from the model's worker thread, or the finished
        text when ``streaming=False``.
        """
        if kwargs:
            raise TypeError(f'generate() got unexpected arguments: {sorted(kwargs)}')
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        params = SamplingParams(do_sample, temperature, top_p, repetition_penalty)
        prompt = self._to_inputs(inputs)
        cache = kv_cache if kv_cache is not None else self.new_cache()
        stream = StreamingResponse(self.detokenize, timeout=timeout, kv_cache=cache)
        stop_ids, stop_sequences = self._stop_tokens(stop_tokens)
        hook = None
        if functions and tool_choice != 'none':
            from .functions.streaming import FunctionHook
            hook = FunctionHook(self, functions, template)
        prefix = self.backend.tokenize(reply_prefix) if reply_prefix else []
        constraint = self.grammars.constraint(hook, functions, tool_choice, response_format,
                                              stop_ids, prefix)
        self._submit(GenerationJob(
            prompt, cache, stream, params, max_new_tokens, min_new_tokens, stop_ids,
            stop_sequences, hook, prefix, seed=seed, constraint=constraint))
        return stream if streaming else stream.wait()

    def _to_inputs(self, inputs: InputLike) -> Inputs:
        if isinstance(inputs, Inputs):
            prompt = inputs
        elif isinstance(inputs, str):
            prompt = Inputs.from_tokens(self.backend.tokenize(inputs))
        elif isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.dtype in (
                np.float16, np.float32, torch.float16, torch.float32, torch.bfloat16):
            prompt = Inputs()
            prompt.add_embedding(torch.as_tensor(inputs).reshape(-1, inputs.shape[-1]))
        else:
            prompt = Inputs.from_tokens(np.asarray(inputs).reshape(-1).tolist())
        if len(prompt) == 0:
            raise ValueError('empty prompt: nothing to generate from')
        return prompt

    def _stop_tokens(self, stop_tokens):
        ids = set(self.config.eos_token_ids)
        sequences = []
        for stop in stop_tokens or ():
            if isinstance(stop, str):
                tokens = self.backend.tokenize(stop)
                if len(tokens) == 1:
                    ids.add(tokens[0])
                elif tokens:
                    sequences.append(tokens)
            else:
                ids.add(int(stop))
        return sorted(ids), sequences

    def _submit(self, job: GenerationJob) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name='nano_llm.generate',
                                                daemon=True)
                self._worker.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            run(self.backend, job, self.stats)

    def close(self) -> None:
        """Stop the worker thread and free the model."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                self._jobs.put(None)
                self._worker.join(timeout=30)
            self._worker = None
        close = getattr(self.backend, 'close', None)
        if close is not None:
            close()
        self.backend = None

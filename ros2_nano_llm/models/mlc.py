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
The MLC-LLM backend: ``mlc_llm.MLCEngine`` in-process (Jetson images ship it).

MLCEngine follows the OpenAI API, so this backend is a text-completion backend like
``api='openai'`` (see ``models/openai.py``): the chat is rendered by ChatHistory's template,
each request sends the cached text plus the new input, and MLC's prefix cache reuses what
the previous turn computed. A Hugging Face model directory is converted once with
``mlc_llm convert_weight`` / ``gen_config`` at the requested ``quantization`` (``q4f16_ft``
by default, as NanoLLM does); the model library is compiled by MLCEngine on first use.
"""

import hashlib
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, Iterator, Optional, Tuple

from .base import ModelConfig
from .loading import cache_root, download, ModelSource
from .text_completion import TextCompletionBackend

log = logging.getLogger(__name__)

DEFAULT_QUANTIZATION = 'q4f16_ft'
DEFAULT_CONTEXT = 4096
INSTALL_HINT = (
    "api='mlc' needs MLC-LLM (the 'mlc_llm' Python package), which is not installed here. On "
    'Jetson, run in a dusty-nv/jetson-containers image that ships it (e.g. dustynv/nano_llm or '
    'dustynv/mlc); elsewhere install the mlc-llm and mlc-ai wheels for your CUDA version from '
    'https://mlc.ai/wheels (pip install --pre -f https://mlc.ai/wheels mlc-llm-nightly-cu122 '
    "mlc-ai-nightly-cu122). Or use api='llama_cpp' or api='hf'.")

_request_ids = itertools.count()


class MLCBackend(TextCompletionBackend):
    """A model compiled by MLC-LLM, run in this process by ``MLCEngine``."""

    name = 'mlc'

    def __init__(self, config: ModelConfig, engine: Any):
        super().__init__(config)
        self.engine = engine

    @classmethod
    def load(cls, source: ModelSource, quantization: Optional[str] = None,
             max_context_len: Optional[int] = None, device: str = 'auto',
             model_lib: Optional[str] = None, mode: str = 'interactive',
             conv_template: str = 'chatml', **kwargs) -> 'MLCBackend':
        """
        Load (converting once when needed) and start an MLCEngine.

        ``source`` is an MLC model directory (with ``mlc-chat-config.json``), a Hugging Face
        model directory or hub id (converted at ``quantization``), or a hub id of a prebuilt
        MLC model (``...-MLC``). ``model_lib`` is a compiled library (else MLC compiles one).
        """
        mlc_llm = import_mlc()
        if kwargs:
            log.warning("api='mlc' ignores options %s", sorted(kwargs))
        quantization = quantization or DEFAULT_QUANTIZATION
        _check_quantization(quantization)
        model = mlc_model_path(source, quantization, conv_template)
        engine_config = None
        if max_context_len:
            from mlc_llm.serve import EngineConfig
            engine_config = EngineConfig(max_single_sequence_length=int(max_context_len),
                                         max_total_sequence_length=int(max_context_len))
        engine = mlc_llm.MLCEngine(model, device=device, model_lib=model_lib, mode=mode,
                                   engine_config=engine_config)
        limit = max_context_len or _context_window(model) or DEFAULT_CONTEXT
        config = ModelConfig(name=source.name, model_type='mlc', max_context_len=int(limit),
                             vocab_size=0, eos_token_ids=[], path=model)
        log.info('loaded %s with MLC-LLM (%s, context %d) from %s', source.name, quantization,
                 limit, model)
        return cls(config, engine)

    def complete(self, prompt: str, request: Dict[str, Any]) -> Iterator[Tuple[str, Any]]:
        """Stream ``(text, finish_reason)`` from ``MLCEngine.completions`` (see the base)."""
        fields = {k: request[k] for k in ('max_tokens', 'stop', 'temperature', 'top_p', 'seed')
                  if request.get(k) is not None}
        if request.get('repetition_penalty', 1.0) != 1.0:
            log.warning("api='mlc' has no repetition penalty in its OpenAI API; ignored")
        request_id = f'ros2_nano_llm-{next(_request_ids)}'
        finished = False
        try:
            for response in self.engine.completions.create(
                    prompt=prompt, stream=True, request_id=request_id, **fields):
                for choice in response.choices:
                    finished = finished or choice.finish_reason is not None
                    yield choice.text or '', choice.finish_reason
        finally:
            if not finished:
                self.engine.abort(request_id)  # stopped early: free the engine's slot

    def close(self) -> None:
        """Stop the engine's background thread."""
        self.engine.terminate()


def import_mlc() -> Any:
    """Return the ``mlc_llm`` module, or raise RuntimeError saying how to install it."""
    try:
        import mlc_llm
    except ImportError as error:
        raise RuntimeError(INSTALL_HINT) from error
    return mlc_llm


def mlc_model_path(source: ModelSource, quantization: str, conv_template: str) -> str:
    """Return what MLCEngine loads for ``source``, converting HF weights once when needed."""
    if source.kind == 'gguf':
        raise ValueError(f"api='mlc' cannot run GGUF files ({source.path}); use "
                         "api='llama_cpp' for them, or give a Hugging Face model directory")
    if source.kind == 'hub' and source.path.endswith('-MLC'):
        return 'HF://' + source.path  # a prebuilt MLC model: MLC downloads it
    path = download(source.path) if source.kind == 'hub' else source.path
    if os.path.isfile(os.path.join(path, 'mlc-chat-config.json')):
        return path
    return convert(path, quantization, conv_template)


def convert(model_dir: str, quantization: str, conv_template: str) -> str:
    """Convert a Hugging Face model directory to MLC weights (cached by path and options)."""
    key = hashlib.sha1(f'{os.path.abspath(model_dir)}:{quantization}:{conv_template}'.encode())
    name = os.path.basename(model_dir.rstrip('/'))
    out = os.path.join(cache_root(), 'mlc', f'{name}-{quantization}-{key.hexdigest()[:12]}')
    if os.path.isfile(os.path.join(out, '.complete')):
        return out
    log.warning('converting %s to MLC %s weights once (cached in %s)', model_dir, quantization,
                out)
    tmp = out + f'.tmp{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    for step in (['convert_weight', model_dir, '--quantization', quantization, '-o', tmp],
                 ['gen_config', model_dir, '--quantization', quantization, '--conv-template',
                  conv_template, '-o', tmp]):
        done = subprocess.run([sys.executable, '-m', 'mlc_llm', *step], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f'mlc_llm {step[0]} failed for {model_dir}: '
                               f'{(done.stderr or done.stdout).strip()[-800:]}')
    open(os.path.join(tmp, '.complete'), 'w').close()
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _check_quantization(quantization: str) -> None:
    try:
        from mlc_llm.quantization import QUANTIZATION
    except ImportError:  # older or newer layouts: let MLC judge
        return
    if quantization not in QUANTIZATION:
        raise ValueError(f'quantization {quantization!r} is not known to MLC-LLM; use one of '
                         f'{sorted(QUANTIZATION)}')


def _context_window(model: str) -> Optional[int]:
    path = os.path.join(model, 'mlc-chat-config.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        value = json.load(f).get('context_window_size')
    return int(value) if value and int(value) > 0 else None

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
The backend for any OpenAI-compatible server (``/v1/completions``, streamed).

Such an engine samples by itself: it is a text-completion backend (see
``models/text_completion.py``) whose chunks ``generation.run`` takes one by one. Each
request sends the text of every position the cache holds plus the new input, so the
server's own prefix cache (llama.cpp, vLLM, MLC, ollama) reuses the previous turn.
"""

import json
import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple
import urllib.error
import urllib.request

from .base import ModelConfig
from .loading import DEFAULT_MODEL, DEFAULT_MODEL_NAME, ModelSource
from .text_completion import TextCompletionBackend

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = 'http://127.0.0.1:8000'
DEFAULT_CONTEXT = 4096  # when neither max_context_len is given nor the server tells


class OpenAIBackend(TextCompletionBackend):
    """A model served by an OpenAI-compatible server, reached over HTTP by its base URL."""

    name = 'openai'

    def __init__(self, config: ModelConfig, base_url: str, served_model: Optional[str],
                 api_key: Optional[str] = None, timeout: float = 300.0,
                 extra_body: Optional[Dict[str, Any]] = None):
        super().__init__(config)
        self.base_url = base_url
        self.served_model = served_model
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})
        self._headers = {'Content-Type': 'application/json', 'Accept': 'text/event-stream'}
        if api_key:
            self._headers['Authorization'] = f'Bearer {api_key}'

    @staticmethod
    def resolve(model: str) -> ModelSource:
        """Return the source for a served model name (nothing is loaded locally)."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be the server's model name or 'default'")
        model = model.strip()
        name = DEFAULT_MODEL_NAME if model == DEFAULT_MODEL else model
        return ModelSource('remote', model, name)

    @classmethod
    def load(cls, source: ModelSource, quantization: Optional[str] = None,
             max_context_len: Optional[int] = None, base_url: Optional[str] = None,
             api_key: Optional[str] = None, timeout: float = 300.0,
             extra_body: Optional[Dict[str, Any]] = None, **kwargs) -> 'OpenAIBackend':
        """
        Connect to the server at ``base_url`` (default ``$OPENAI_BASE_URL`` or port 8000).

        ``model`` names the served model (``'default'``: the server's first one).
        ``max_context_len`` defaults to what the server reports, else 4096. ``extra_body``
        is merged into every request (server-specific fields such as ``top_k``).
        """
        if quantization:
            log.warning("api='openai' ignores quantization=%r: the server sets it", quantization)
        if kwargs:
            log.warning("api='openai' ignores options %s", sorted(kwargs))
        base_url = (base_url or os.environ.get('OPENAI_BASE_URL') or DEFAULT_BASE_URL).rstrip('/')
        base_url = base_url[:-3] if base_url.endswith('/v1') else base_url
        api_key = api_key or os.environ.get('OPENAI_API_KEY')
        probe = cls(ModelConfig(source.name, 'openai', 0, 0, []), base_url, None, api_key,
                    timeout)
        served = probe._get('/v1/models').get('data') or []
        if source.kind in ('remote', 'hub') and source.path != DEFAULT_MODEL:
            served_model = source.path
        else:  # 'default' or a local file: whatever the server serves
            served_model = served[0].get('id') if served else None
        limit = max_context_len or _served_context(served, served_model) or \
            probe._llama_cpp_context() or DEFAULT_CONTEXT
        config = ModelConfig(name=source.name, model_type='openai', max_context_len=int(limit),
                             vocab_size=0, eos_token_ids=[])
        log.info("api='openai': %s served as %r at %s (context %d)", source.name, served_model,
                 base_url, limit)
        return cls(config, base_url, served_model, api_key, timeout, extra_body)

    def complete(self, prompt: str, request: Dict[str, Any]) -> Iterator[Tuple[str, Any]]:
        """Stream ``(text, finish_reason)`` from ``/v1/completions`` (see the base class)."""
        body = {'model': self.served_model, 'prompt': prompt, 'stream': True}
        body.update({k: v for k, v in request.items() if v is not None})
        # the penalty under llama.cpp's name too (its server defaults to 1.1, not 1.0)
        body['repeat_penalty'] = body.get('repetition_penalty', 1.0)
        body.update(self.extra_body)
        response = self._open('/v1/completions', body)
        with response:
            for raw in response:
                line = raw.decode('utf-8').strip()
                if not line.startswith('data:'):
                    continue  # blank separators, comments, pings
                data = line[5:].strip()
                if data == '[DONE]':
                    return
                chunk = json.loads(data)
                if chunk.get('error'):
                    raise RuntimeError(f'the server at {self.base_url} failed: {chunk["error"]}')
                for choice in chunk.get('choices') or ():
                    yield choice.get('text') or '', choice.get('finish_reason')

    # ---- HTTP ----------------------------------------------------------------------------
    def _open(self, path: str, body: Optional[Dict[str, Any]] = None, timeout: float = None):
        data = json.dumps(body).encode('utf-8') if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=self._headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            detail = error.read().decode('utf-8', errors='replace')[:500]
            raise RuntimeError(f'{self.base_url}{path} answered HTTP {error.code}: '
                               f'{detail}') from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, 'reason', error)
            raise RuntimeError(
                f'cannot reach an OpenAI-compatible server at {self.base_url} ({reason}); start '
                'one (e.g. python -m llama_cpp.server --model FILE.gguf) or pass base_url='
            ) from error

    def _get(self, path: str) -> Dict[str, Any]:
        with self._open(path, timeout=min(self.timeout, 10.0)) as response:
            return json.loads(response.read().decode('utf-8'))

    def _llama_cpp_context(self) -> Optional[int]:
        # llama.cpp's own server reports its context on /props
        try:
            props = self._get('/props')
        except (RuntimeError, ValueError):
            return None
        settings = props.get('default_generation_settings') or {}
        n_ctx = props.get('n_ctx') or settings.get('n_ctx')
        return int(n_ctx) if n_ctx else None


def _served_context(served: List[Dict[str, Any]], model: Optional[str]) -> Optional[int]:
    # vLLM lists max_model_len with each served model
    for entry in served:
        if model is None or entry.get('id') == model:
            value = entry.get('max_model_len') or entry.get('context_length')
            if value:
                return int(value)
    return None

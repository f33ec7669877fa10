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
Backends whose engine streams text instead of logits: any OpenAI-compatible server.

Such an engine samples by itself, so the backend runs the whole reply (``runs_generation``)
instead of the logits loop in ``generation.py``. Everything above it is unchanged: the chat
is rendered by ChatHistory's template into local token ids, and the KV cache keeps its keys.
Each request sends the text of every position the cache holds plus the new input to the
server's ``/v1/completions``, so consecutive turns share their prefix and the server's own
prefix cache (llama.cpp, vLLM, MLC, ollama) reuses it.

The local ids come from :class:`PieceVocab`: each id stands for a piece of text (a word, a
punctuation run, a special marker, or one streamed chunk of a reply), so detokenizing the
cache keys gives back the exact text sent and received.
"""

import json
import logging
import os
import re
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple
import urllib.error
import urllib.request

import torch

from .base import Inputs, ModelConfig
from .loading import DEFAULT_MODEL, DEFAULT_MODEL_NAME, ModelSource

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = 'http://127.0.0.1:8000'
DEFAULT_CONTEXT = 4096  # when neither max_context_len is given nor the server tells

# special markers, contractions, letter runs (at most 8 letters, a rough BPE token), numbers,
# punctuation runs and whitespace: every character falls in one piece
_PIECES = re.compile(r"<\|[^|<>\s]{1,40}\|>|'(?:[sdmt]|ll|ve|re)(?![^\W\d_])| ?[^\W\d_]{1,8}"
                     r'| ?\d{1,3}| ?_+| ?[^\s\w]+|\s+(?!\S)|\s+|.', re.S)


class PieceVocab:
    """Reversible local token ids: each id is one piece of text, numbered as first seen."""

    def __init__(self):
        self._ids: Dict[str, int] = {}
        self._pieces: List[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pieces)

    def intern(self, piece: str) -> int:
        """Return the id of ``piece``, adding it when new."""
        found = self._ids.get(piece)
        if found is not None:
            return found
        with self._lock:
            if piece not in self._ids:
                self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            return self._ids[piece]

    def encode(self, text: str) -> List[int]:
        """Split ``text`` into pieces and return their ids."""
        return [self.intern(p) for p in _PIECES.findall(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Return the text of ``ids``; raise ValueError for an id never handed out."""
        pieces, n = self._pieces, len(self._pieces)
        out = []
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"id {i} was never handed out by this backend's tokenize()")
            out.append(pieces[i])
        return ''.join(out)


class TextCompletionBackend:
    """
    Base of the backends whose engine takes a prompt text and streams text chunks.

    Subclasses implement :meth:`complete`. The chat layer calls ``tokenize``/``detokenize``
    and keeps a ``KVCache`` as with any backend; ``crop`` has nothing to free here, because
    the prompt of each request is rebuilt from the cache's keys.
    """

    name = 'text'
    runs_generation = True  # generation.run hands the whole job to run()

    def __init__(self, config: ModelConfig):
        self.config = config
        self.vocab = PieceVocab()
        self.last_prompt: Optional[str] = None  # the prompt text of the latest request

    # ---- text and cache ------------------------------------------------------------------
    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = True) -> List[int]:
        """Return local ids of ``text`` (reversible; about one per model token)."""
        return self.vocab.encode(text)

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Return the text of local ids."""
        text = self.vocab.decode(tokens)
        return _SPECIAL.sub('', text) if skip_special_tokens else text

    def new_cache(self) -> None:
        """Return the cache state: none, the keys of the ``KVCache`` say it all."""
        return None

    def crop(self, cache: Any, length: int) -> None:
        """Nothing to drop: the next prompt is rebuilt from the cropped keys."""

    def prefill(self, inputs: Inputs, cache: Any, start: int) -> torch.Tensor:
        """Not available: the engine samples by itself and returns no logits."""
        raise NotImplementedError(f"api='{self.name}' streams text and has no logits; use "
                                  'NanoLLM.generate()')

    decode_step = prefill

    # ---- one reply -----------------------------------------------------------------------
    def complete(self, prompt: str, request: Dict[str, Any]) -> Iterator[Tuple[str, Any]]:
        """
        Stream ``(text, finish_reason)`` for ``prompt``; closing the iterator cancels it.

        ``request`` holds the OpenAI completion fields (``max_tokens``, ``temperature``,
        ``top_p``, ``stop``, ``seed``, ``min_tokens``) and ``repetition_penalty`` (the vLLM
        name). ``finish_reason`` is None until the last chunk.
        """
        raise NotImplementedError

    def run(self, job: Any, stats: Dict[str, float]) -> None:
        """
        Generate one reply for a ``GenerationJob`` into ``job.stream``; record ``stats``.

        Keeps the cache's keys equal to what the engine has seen: the prompt, every streamed
        chunk and every injected function result.
        """
        stream, cache = job.stream, job.cache
        reason, first_at, generated, start = 'length', None, 0, time.perf_counter()
        try:
            if not job.inputs.is_text:
                raise ValueError(f"api='{self.name}' takes text only; {self.config.name} cannot "
                                 'take images here')
            if len(cache) + len(job.inputs) >= self.config.max_context_len:
                raise ValueError(f'prompt of {len(job.inputs)} tokens after {len(cache)} cached '
                                 f'does not fit the context of {self.config.max_context_len} '
                                 'tokens; shorten it or wrap the chat')
            cache.keys.extend(job.inputs.keys)
            self._inject(stream, cache, job.reply_prefix)
            if job.reply_prefix and job.function_hook:
                self._inject(stream, cache, job.function_hook(stream) or [])
            while generated < job.max_new_tokens:
                request = self._request(job, job.max_new_tokens - generated)
                self.last_prompt = self.detokenize(cache.keys)
                chunks = self.complete(self.last_prompt, request)
                injected, finish = None, None
                try:
                    for text, finish in chunks:
                        if text:
                            token = self.vocab.intern(text)
                            stream.put(token)
                            cache.keys.append(token)
                            generated += 1
                            first_at = first_at or time.perf_counter()
                            if stream.stopped:
                                finish = 'stopped'
                                break
                            injected = job.function_hook(stream) if job.function_hook else None
                            if injected:
                                break
                finally:
                    chunks.close()  # ends the request when we stopped reading early
                if not injected and finish == 'stop' and job.function_hook:
                    injected = job.function_hook(stream, final=True)  # a call the end completes
                if injected:
                    self._inject(stream, cache, injected)
                    continue  # a new request goes on after the function result
                reason = {'stop': 'eos', 'stopped': 'stopped'}.get(finish, 'length')
                break
            _record(stats, len(job.inputs), generated, start, first_at, job.submitted)
            stream.end(eos=reason == 'eos', reason=reason)
        except Exception as error:  # noqa: BLE001 - handed to the reader, never lost
            stream.end(reason='error', error=error)

    @staticmethod
    def _inject(stream: Any, cache: Any, tokens: Sequence[int]) -> None:
        # text that joins the reply without being generated (reply prefix, function results)
        for t in tokens:
            stream.put(t)
        cache.keys.extend(tokens)

    def _request(self, job: Any, max_tokens: int) -> Dict[str, Any]:
        params = job.params
        stop = [self.detokenize([t]) for t in job.stop_ids if 0 <= t < len(self.vocab)]
        stop += [self.detokenize(seq) for seq in job.stop_sequences]
        request = {'max_tokens': int(max_tokens), 'stop': [s for s in stop if s] or None,
                   'temperature': float(params.temperature) if params.do_sample else 0.0,
                   'top_p': float(params.top_p) if params.do_sample else 1.0,
                   'repetition_penalty': float(params.repetition_penalty)}
        if job.seed is not None:
            request['seed'] = int(job.seed)
        if job.min_new_tokens > 0:
            request['min_tokens'] = int(job.min_new_tokens)
        return request


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


_SPECIAL = re.compile(r'<\|[^|<>\s]{1,40}\|>')


def _served_context(served: List[Dict[str, Any]], model: Optional[str]) -> Optional[int]:
    # vLLM lists max_model_len with each served model
    for entry in served:
        if model is None or entry.get('id') == model:
            value = entry.get('max_model_len') or entry.get('context_length')
            if value:
                return int(value)
    return None


def _record(stats: Dict[str, float], n_in: int, n_out: int, start: float,
            first_at: Optional[float], submitted: float) -> None:
    # the figures generation.run records; the first chunk ends the (engine-side) prefill
    end = time.perf_counter()
    first = first_at or end
    decode_time = end - first
    stats.update(
        input_tokens=n_in, output_tokens=n_out, prefill_time=first - start,
        prefill_rate=n_in / max(first - start, 1e-9), decode_time=decode_time,
        decode_rate=(n_out - 1) / max(decode_time, 1e-9) if n_out > 1 else 0.0,
        time_to_first_token=(first_at - submitted) if first_at else float('nan'))

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
One generation: prefill the new input into the cache, then decode token by token.

Runs on the model's worker thread. Every position the backend computes is recorded in
``cache.keys`` as it happens, so a reply that ends early (stop token, ``stop()``, length,
an error) always leaves the cache consistent.
"""

from dataclasses import dataclass, field
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

from .chat.stream import StreamingResponse
from .models.base import Backend, Inputs, KVCache
from .models.sampling import sample, SamplingParams


@dataclass
class GenerationJob:
    """Everything one ``generate()`` call asked for."""

    inputs: Inputs
    cache: KVCache
    stream: StreamingResponse
    params: SamplingParams
    max_new_tokens: int = 128
    min_new_tokens: int = -1
    stop_ids: Sequence[int] = ()
    stop_sequences: Sequence[Sequence[int]] = ()
    function_hook: Any = None          # callable(stream, final) -> token ids to inject, or None
    reply_prefix: Sequence[int] = ()   # tokens the reply must start with
    submitted: float = field(default_factory=time.perf_counter)
    seed: Optional[int] = None
    constraint: Any = None  # mask(logits), advance(token), done(): a grammar (constraints.py)


def prefill(backend: Backend, cache: KVCache, inputs: Inputs) -> torch.Tensor:
    """Run ``inputs`` after what ``cache`` holds; return the last logits (V,)."""
    logits = backend.prefill(inputs, cache.state, len(cache))
    cache.keys.extend(inputs.keys)
    return logits


def decode_one(backend: Backend, cache: KVCache, token: int) -> torch.Tensor:
    """Run one token after what ``cache`` holds; return its logits (V,)."""
    logits = backend.decode_step(token, cache.state, len(cache))
    cache.keys.append(token)
    return logits


def _context_ids(cache: KVCache) -> torch.Tensor:
    return torch.tensor([k for k in cache.keys if isinstance(k, int)], dtype=torch.long)


def _extend(context: Optional[torch.Tensor], tokens: List[int]) -> Optional[torch.Tensor]:
    # the repetition penalty's view of the context (None when there is no penalty)
    return None if context is None else torch.cat([context, torch.tensor(tokens)])


def _inject(backend: Backend, cache: KVCache, stream: StreamingResponse,
            tokens: List[int]) -> torch.Tensor:
    # a function result joins the reply: it is part of the bot turn's tokens
    for t in tokens:
        stream.put(t)
    return prefill(backend, cache, Inputs.from_tokens(tokens))


def _hit_stop_sequence(tokens: List[int], sequences: Sequence[Sequence[int]]) -> bool:
    return any(len(seq) and tokens[-len(seq):] == list(seq) for seq in sequences)


def run(backend: Backend, job: GenerationJob, stats: Dict[str, float]) -> None:
    """Generate one reply into ``job.stream``; record figures in ``stats``."""
    if getattr(backend, 'runs_generation', False):
        backend.run(job, stats)  # an engine that samples by itself (api='openai', 'mlc')
        return
    stream, cache, params = job.stream, job.cache, job.params
    limit = backend.config.max_context_len
    generator = torch.Generator().manual_seed(job.seed) if job.seed is not None else None
    reason, first_token_at, decode_start = 'length', None, None
    try:
        if len(cache) + len(job.inputs) >= limit:
            raise ValueError(f'prompt of {len(job.inputs)} tokens after {len(cache)} cached does '
                             f'not fit the context of {limit} tokens; shorten it or wrap the chat')
        start = time.perf_counter()
        logits = prefill(backend, cache, job.inputs)
        prefill_time = time.perf_counter() - start
        decode_start = time.perf_counter()
        context = _context_ids(cache) if params.repetition_penalty != 1.0 else None
        if job.reply_prefix:
            # the reply starts with given text (steers the format); it counts as reply tokens
            logits = _inject(backend, cache, stream, job.reply_prefix)
            context = _extend(context, job.reply_prefix)
            first_token_at = time.perf_counter()
            injected = job.function_hook(stream) if job.function_hook else None
            if injected:
                logits = _inject(backend, cache, stream, injected)
                context = _extend(context, injected)
        i = 0
        while i < job.max_new_tokens:
            banned = job.stop_ids if i < job.min_new_tokens else ()
            if job.constraint is not None:
                logits = job.constraint.mask(logits)
            token = sample(logits, params, context, banned, generator)
            i += 1
            if token in job.stop_ids:
                reason = 'eos'
                # a call that only the end of the reply completes still gets its result
                injected = job.function_hook(stream, final=True) if job.function_hook else None
                if not injected:
                    break
                logits = _inject(backend, cache, stream, injected)
                context = _extend(context, injected)
                reason = 'length'
                continue
            stream.put(token)
            if job.constraint is not None:
                job.constraint.advance(token)
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if stream.stopped:
                reason = 'stopped'
                break
            if _hit_stop_sequence(stream.tokens, job.stop_sequences):
                reason = 'stop'
                break
            if job.constraint is not None and job.constraint.done():
                # the grammar is complete: the reply ends, unless that completes a call
                reason = 'eos'
                injected = job.function_hook(stream, final=True) if job.function_hook else None
                if not injected:
                    break
                decode_one(backend, cache, token)
                logits = _inject(backend, cache, stream, injected)
                context = _extend(context, [token] + injected)
                reason = 'length'
                continue
            if i == job.max_new_tokens or len(cache) + 1 >= limit:
                break  # no room or no need to compute the last token's state
            logits = decode_one(backend, cache, token)
            context = _extend(context, [token])
            injected = job.function_hook(stream) if job.function_hook else None
            if injected:
                logits = _inject(backend, cache, stream, injected)
                context = _extend(context, injected)
        _record(stats, len(job.inputs), len(stream.tokens), prefill_time,
                time.perf_counter() - decode_start, first_token_at, job.submitted)
        stream.end(eos=reason == 'eos', reason=reason)
    except Exception as error:  # noqa: BLE001 - handed to the reader, never lost in the worker
        stream.end(reason='error', error=error)


def _record(stats: Dict[str, float], n_in: int, n_out: int, prefill_time: float,
            decode_time: float, first_token_at: Optional[float], submitted: float) -> None:
    stats.update(
        input_tokens=n_in, output_tokens=n_out,
        prefill_time=prefill_time, prefill_rate=n_in / max(prefill_time, 1e-9),
        decode_time=decode_time,
        decode_rate=max(n_out - 1, 0) / max(decode_time, 1e-9) if n_out > 1 else 0.0,
        time_to_first_token=(first_token_at - submitted) if first_token_at else float('nan'))

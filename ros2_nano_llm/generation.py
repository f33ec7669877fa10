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
The one generation loop: prefill the new input, then take token after token.

Runs on the model's worker thread. Tokens come from a source: sampled from the logits of a
:class:`LogitsBackend`, or streamed by a :class:`TextEngineBackend` that samples by itself.
Stop rules (stop tokens, stop strings, length, the context window, ``stop()``), statistics,
function hooks and constraints are applied here once for both. Every position the backend
computes is recorded in ``cache.keys`` as it happens, so a reply that ends early always
leaves the cache consistent.
"""

from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .chat.reply import Figures
from .chat.stream import StreamingResponse
from .models.backend import Backend, EngineRequest, LogitsBackend, PrefillStopped
from .models.base import Inputs, KVCache
from .models.sampling import sample, SamplingParams
from .settings import SAMPLING_DEFAULTS


@dataclass
class GenerationJob:
    """Everything one ``generate()`` call asked for."""

    inputs: Inputs
    cache: KVCache
    stream: StreamingResponse
    params: SamplingParams
    max_new_tokens: int = SAMPLING_DEFAULTS['max_new_tokens']
    min_new_tokens: int = SAMPLING_DEFAULTS['min_new_tokens']
    stop_ids: Sequence[int] = ()
    stop_strings: Sequence[str] = ()   # text that ends the reply; it is not kept in the reply
    function_hook: Any = None          # callable(stream, final) -> token ids to inject, or None
    reply_prefix: Sequence[int] = ()   # tokens the reply must start with
    submitted: float = field(default_factory=time.perf_counter)
    seed: Optional[int] = None
    constraint: Any = None             # mask(logits) -> logits, advance(token), done() -> bool
    choice: Any = None                 # functions.choice.NameChoice: a required call's function


# ---- the steps ------------------------------------------------------------------------------
def prefill(backend: LogitsBackend, cache: KVCache, inputs: Inputs,
            stopped: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """
    Run ``inputs`` after what ``cache`` holds; return the last logits (V,).

    ``stopped()`` turning True ends a long prefill early (``PrefillStopped``), with none
    of ``inputs`` in the cache.
    """
    try:
        logits = backend.prefill_until(inputs, cache.state, len(cache), stopped)
    except PrefillStopped as stop:
        cache.crop(stop.held)  # the backend has cut its state; the keys follow
        raise
    cache.keys.extend(inputs.keys)
    return logits


def decode_one(backend: LogitsBackend, cache: KVCache, token: int) -> np.ndarray:
    """Run one token after what ``cache`` holds; return its logits (V,)."""
    logits = backend.decode_step(token, cache.state, len(cache))
    cache.keys.append(token)
    return logits


class _Sampled:
    """Tokens sampled from a logits backend: the logits of the latest position, kept."""

    def __init__(self, backend: LogitsBackend, job: GenerationJob):
        self.backend, self.job, self.cache = backend, job, job.cache
        self.logits: Optional[np.ndarray] = None
        self.context: Optional[List[int]] = None  # what the repetition penalty looks at
        self.rng = np.random.default_rng(job.seed)  # one per reply; unseeded without a seed

    def start(self) -> None:
        self.logits = prefill(self.backend, self.cache, self.job.inputs, self._stopped)
        if self.job.params.repetition_penalty != 1.0:
            self.context = [k for k in self.cache.keys if isinstance(k, int)]

    def take(self, count: int) -> Optional[int]:
        """Return the next token (``count`` tokens taken so far)."""
        logits = self.logits
        if self.job.constraint is not None:
            logits = self.job.constraint.mask(logits)
        banned = self.job.stop_ids if count < self.job.min_new_tokens else ()
        return sample(logits, self.job.params, self.context, banned, self.rng)

    def advance(self, token: int) -> None:
        """Compute the state of ``token`` (the next logits)."""
        self.logits = decode_one(self.backend, self.cache, token)
        self._seen([token])

    def inject(self, tokens: Sequence[int]) -> None:
        """
        Run tokens that join the reply without being sampled.

        A stop does not cut them short: they are a call's result (at most
        ``MAX_RESULT_CHARS``) or the reply prefix, already in the stream, and a call that
        ran stays in the chat with its result; the loop ends the reply right after them.
        """
        self.logits = prefill(self.backend, self.cache, Inputs.from_tokens(tokens))
        self._seen(tokens)

    def finish_reason(self) -> str:
        return 'length'

    def close(self) -> None:
        pass

    def _stopped(self) -> bool:
        return self.job.stream.stopped

    def _seen(self, tokens: Sequence[int]) -> None:
        if self.context is not None:
            self.context.extend(int(t) for t in tokens)


class _Streamed:
    """Tokens an engine samples by itself; a new request follows each injection."""

    def __init__(self, backend: Any, job: GenerationJob):
        self.backend, self.job, self.cache = backend, job, job.cache
        self.chunks = None
        self.finish: Optional[str] = None

    def start(self) -> None:
        if not self.job.inputs.is_text:
            raise ValueError(f"api='{self.backend.name}' takes text only; "
                             f'{self.backend.config.name} cannot take images here')
        if self.job.constraint is not None:
            raise ValueError(f"api='{self.backend.name}' samples by itself and cannot apply a "
                             "constraint; use api='llama_cpp' or api='hf'")
        self.cache.keys.extend(self.job.inputs.keys)

    def take(self, count: int) -> Optional[int]:
        """Return the next streamed token, or None when the engine ended the reply."""
        if self.chunks is None:
            self.chunks = self.backend.continuation(list(self.cache.keys),
                                                    self._request(count))
        for token, finish in self.chunks:
            self.finish = finish
            if token is not None:
                return token
        self.close()
        return None

    def advance(self, token: int) -> None:
        self.cache.keys.append(token)  # the engine has it; the next prompt holds it too

    def inject(self, tokens: Sequence[int]) -> None:
        self.close()  # the engine's reply goes on in a new request after the injection
        self.cache.keys.extend(tokens)

    def finish_reason(self) -> str:
        return 'eos' if self.finish == 'stop' else 'length'

    def close(self) -> None:
        if self.chunks is not None:
            self.chunks.close()
            self.chunks = None

    def _request(self, count: int) -> EngineRequest:
        job, params = self.job, self.job.params
        known = [t for t in job.stop_ids if _is_id(self.backend, t)]
        stop = [self.backend.detokenize([t]) for t in known] + list(job.stop_strings)
        return EngineRequest(
            max_tokens=job.max_new_tokens - count, stop=[s for s in stop if s] or None,
            temperature=float(params.temperature) if params.do_sample else 0.0,
            top_p=float(params.top_p) if params.do_sample else 1.0,
            repetition_penalty=float(params.repetition_penalty), seed=job.seed,
            min_tokens=job.min_new_tokens - count if job.min_new_tokens > count else None)


def _is_id(backend: Backend, token: int) -> bool:
    try:
        backend.detokenize([token])
    except ValueError:
        return False
    return True


def token_source(backend: Backend, job: GenerationJob) -> Any:
    """Return where the tokens of ``job`` come from."""
    if isinstance(backend, LogitsBackend):
        return _Sampled(backend, job)
    return _Streamed(backend, job)


# ---- stop strings ---------------------------------------------------------------------------
class _StopText:
    """
    Holds reply tokens back while their text may begin a stop string.

    A stop string of several tokens is not part of the reply: when one completes, the
    tokens from the one its first character is in are dropped (from the reply and from the
    cache), so ``reply.text``, ``reply.tokens`` and the cache agree.
    """

    def __init__(self, backend: Backend, stop_strings: Sequence[str]):
        self.backend = backend
        self.stops = [s for s in stop_strings if s]
        self.pending: List[int] = []
        self._text = ''  # the text of ``pending`` as add() last decoded it

    def add(self, token: int) -> Optional[Tuple[int, List[int]]]:
        """
        Take a reply token; when a stop string completes, return what of the held ones stays.

        That is ``(n, extra)``: the first ``n`` held tokens, then ``extra``, the tokens of the
        text before the stop string that shares a token with it (``.`` of ``.[/``).
        """
        self.pending.append(token)
        text = self._text = self.backend.detokenize(self.pending)
        hits = [text.find(s) for s in self.stops if s in text]
        if not hits:
            return None
        cut = min(hits)
        n = self._tokens_before(cut)
        rest = text[len(self.backend.detokenize(self.pending[:n])):cut]
        return n, (self.backend.tokenize(rest) if rest else [])

    def releasable(self) -> List[int]:
        """Return (and forget) the held tokens when no stop string can begin in them."""
        if any(_overlap(self._text, s) for s in self.stops):
            return []
        out, self.pending = self.pending, []
        return out

    def _tokens_before(self, cut: int) -> int:
        for n in range(len(self.pending), -1, -1):
            if len(self.backend.detokenize(self.pending[:n])) <= cut:
                return n
        return 0


def _overlap(text: str, stop: str) -> bool:
    """Return True when a suffix of ``text`` is a proper prefix of ``stop``."""
    return any(text.endswith(stop[:n]) for n in range(1, len(stop)))


# ---- the loop -------------------------------------------------------------------------------
def run(backend: Backend, job: GenerationJob, stats: Dict[str, float]) -> None:
    """Generate one reply into ``job.stream``; its figures go to its record and ``stats``."""
    stream, cache = job.stream, job.cache
    limit = backend.config.max_context_len
    source = token_source(backend, job)
    stops = _StopText(backend, job.stop_strings) if job.stop_strings else None
    reason, first_token_at, count = 'length', None, 0
    start = time.perf_counter()

    def put(tokens: Sequence[int]) -> None:
        nonlocal first_token_at
        for t in tokens:
            stream.put(t)
        if tokens and first_token_at is None:
            first_token_at = time.perf_counter()

    def flush() -> None:
        if stops is not None and stops.pending:
            put(stops.pending)
            stops.pending = []

    def inject(tokens: Sequence[int]) -> None:
        flush()  # held tokens are in the cache already: the reply keeps its order
        put(tokens)
        source.inject(tokens)

    try:
        job.inputs.check(cache)
        if len(cache) + len(job.inputs) >= limit:
            raise ValueError(f'prompt of {len(job.inputs)} tokens after {len(cache)} cached does '
                             f'not fit the context of {limit} tokens; shorten it or wrap the chat')
        source.start()
        prefill_time = time.perf_counter() - start
        decode_start = time.perf_counter()
        if stream.stopped:
            raise PrefillStopped(len(cache))  # asked as the prefill ended: no token either
        if job.reply_prefix:
            # the reply starts with given text (steers the format); it counts as reply tokens
            inject(job.reply_prefix)
            injected = job.function_hook(stream) if job.function_hook else None
            if injected:
                inject(injected)
        if job.choice is not None:
            # a required call's function, chosen by likelihood on a scratch cache; it
            # narrows the constraint to that function (functions/choice.py)
            job.choice.choose(backend, cache.keys)
        while count < job.max_new_tokens:
            if stream.stopped:  # (a stop while a call ran: nothing sampled after its result)
                reason = 'stopped'
                break
            token = source.take(count)
            if token is not None:
                count += 1
            if token is None or token in job.stop_ids:
                reason = 'eos' if token is not None else source.finish_reason()
                flush()
                # a call that only the end of the reply completes still gets its result
                injected = job.function_hook(stream, final=True) \
                    if job.function_hook and reason == 'eos' else None
                if not injected:
                    break
                inject(injected)
                reason = 'length'
                continue
            if job.constraint is not None:
                job.constraint.advance(token)
            if stops is None:
                put([token])
            else:
                kept = stops.add(token)
                if kept is not None:
                    # the stop string's tokens leave the reply and the cache (all held ones
                    # but this token were computed into it); text before it in a shared
                    # token joins the reply as its own tokens, for the next prefill to run
                    keep, extra = kept
                    cache.crop(len(cache) - (len(stops.pending) - keep - 1))
                    put(stops.pending[:keep] + extra)
                    stops.pending = []
                    reason = 'stop'
                    break
                put(stops.releasable())
            if stream.stopped:
                reason = 'stopped'
                break
            if job.constraint is not None and job.constraint.done():
                reason = 'eos'
                flush()
                injected = job.function_hook(stream, final=True) if job.function_hook else None
                if injected:
                    source.advance(token)
                    inject(injected)
                    reason = 'length'
                    continue
                break
            if count == job.max_new_tokens or len(cache) + 1 >= limit:
                break  # no room or no need to compute the last token's state
            source.advance(token)
            injected = job.function_hook(stream) if job.function_hook else None
            if injected:
                inject(injected)
        flush()
        figures = stream.record.figures = Figures.measure(
            len(job.inputs), len(stream.tokens), prefill_time,
            time.perf_counter() - decode_start, first_token_at, job.submitted)
        stats.update(figures.as_dict())
        stream.end(reason=reason)
    except PrefillStopped:
        # stop() during the prefill: the cache is as it was, the figures say what ran
        figures = stream.record.figures = Figures.measure(
            len(job.inputs), len(stream.tokens), time.perf_counter() - start, 0.0,
            first_token_at, job.submitted)
        stats.update(figures.as_dict())
        stream.end(reason='stopped')
    except Exception as error:  # noqa: BLE001 - handed to the reader, never lost in the worker
        stream.end(reason='error', error=error)
    finally:
        source.close()

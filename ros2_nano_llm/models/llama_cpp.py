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
The llama.cpp backend: GGUF models run in-process through ``llama-cpp-python``.

A llama context holds one KV cache (sequence 0), while the chat layer may keep several
caches alive (a chat, a one-off prompt, a recompute). Each cache is a small handle; the
handle that last ran owns the context. Switching to another handle saves the owner's
sequence state into its handle and restores the new one's, so every handle behaves like a
cache of its own, bit for bit. Every call into llama.cpp goes through ``LlamaContext``.

A new turn prefills only its own tokens: the positions a reply computed one at a time
(decode steps) stay in the cache. llama.cpp computes a lone token slightly differently
from the same token in a batch of two or more (batches of any size >= 2 agree bit for bit),
so a cached chat is not bit-identical to a recompute that prefills it in one batch: on the
embedded SmolLM2 its next-token logits differ by at most about 0.3 (logits of ~30), and
greedy replies agree (test_backend_exactness.py states the tolerance). ``bit_exact=True``
gives the old guarantee: the decoded positions are run again, batched with the next
prefill, so each turn also pays a prefill of the previous reply's tokens.

A reply's ``stop()`` ends a long prefill within one graph node (llama.cpp's abort callback,
set only while a prefill runs), and the prefill's positions are cut again. Loading runs one
token and drops it, as llama.cpp's own tools do, so the first reply does not pay for paging
the weights in.
"""

import functools
import inspect
import logging
import os
import threading
from typing import Any, Iterator, List, Optional, Sequence
import warnings
import weakref

import numpy as np

from .backend import LogitsBackend, PrefillStopped
from .base import Inputs, ModelConfig
from .llama_context import DecodeAborted, LlamaContext
from .loading import ModelSource

log = logging.getLogger(__name__)


class LlamaCppCache:
    """
    One KV cache on a llama context: the tokens it holds, and its saved state.

    Positions ``[0, batched)`` were computed in batches; later ones by decode steps (only
    ``bit_exact`` looks at it). ``saved`` holds the sequence's state bytes while another
    handle owns the context.
    """

    __slots__ = ('tokens', 'batched', 'saved', '__weakref__')

    def __init__(self):
        self.tokens: List[int] = []
        self.batched = 0
        self.saved: Any = None

    def __len__(self) -> int:
        return len(self.tokens)


def _locked(method):
    """Run ``method`` holding the backend's context lock."""
    @functools.wraps(method)
    def run(self, *args):
        with self._lock:
            return method(self, *args)
    return run


class LlamaCppBackend(LogitsBackend):
    """A GGUF model run token by token on one llama.cpp context (see the module docstring)."""

    name = 'llama_cpp'

    def __init__(self, context: LlamaContext, config: ModelConfig, bit_exact: bool = False):
        self._c = context
        self.llm = context.llm  # the llama_cpp.Llama object (its tokenizer, its options)
        self.config = config
        self.bit_exact = bool(bit_exact)
        self._owner = None            # weakref to the handle whose positions the context holds
        self._lock = threading.RLock()  # the context: the worker runs it, a chat may crop it
        self._pieces = {True: {}, False: {}}  # special -> token id -> its bytes
        # joining cached pieces is what llama_detokenize does, unless the vocabulary cleans up
        # spaces around punctuation; then every call goes to llama_detokenize
        probe = self.tokenize("Hi , it 's me . Don 't ! <|im_end|> 1 2", special=True)
        self._join_pieces = all(self._join(probe, s) == self._llama_detokenize(probe, s)
                                for s in (True, False))

    @classmethod
    def load(cls, source: ModelSource, quantization: Optional[str] = None,
             max_context_len: Optional[int] = None, n_ctx: Optional[int] = None,
             n_threads: Optional[int] = None, n_gpu_layers: Optional[int] = None,
             n_batch: int = 512, bit_exact: bool = False, **kwargs) -> 'LlamaCppBackend':
        """
        Load a GGUF file into a llama.cpp context.

        The KV cache holds ``n_ctx`` positions, else the model's trained context capped by
        ``max_context_len`` (what api='hf' takes too); ``n_threads`` defaults to every CPU
        this process may use; ``n_gpu_layers`` to all layers where llama.cpp was built with
        GPU offload. ``bit_exact`` re-runs each reply's decoded positions with the next
        prefill (see the module docstring). Other keyword arguments that
        ``llama_cpp.Llama`` takes (``flash_attn``, ``type_k``, ...) are passed on.
        """
        llama_cpp = _import_llama_cpp()
        if source.kind != 'gguf':
            raise ValueError(
                f"api='llama_cpp' loads .gguf files, and {source.path} is not one; convert it "
                "with llama.cpp's convert_hf_to_gguf.py, or use api='hf'")
        if quantization:
            log.warning("api='llama_cpp' ignores quantization=%r: the GGUF file sets it",
                        quantization)
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        threads = int(n_threads) if n_threads else _usable_cpus()
        explicit, cap = int(n_ctx or 0), int(max_context_len or 0)
        if threads < 1 or explicit < 0 or cap < 0:
            raise ValueError(f'n_threads must be >= 1 and n_ctx > 0, got {n_threads}, {n_ctx}')
        params = {'model_path': source.path, 'n_ctx': explicit or cap,  # 0: the trained one
                  'n_threads': threads,
                  'n_threads_batch': int(kwargs.pop('n_threads_batch', None) or threads),
                  'n_gpu_layers': int(n_gpu_layers), 'n_batch': int(n_batch),
                  'logits_all': False, 'verbose': False}
        accepted = set(inspect.signature(llama_cpp.Llama.__init__).parameters) - set(params)
        params.update({k: v for k, v in kwargs.items() if k in accepted and v is not None})
        ignored = sorted(k for k in kwargs if k not in accepted)
        if ignored:
            log.warning("api='llama_cpp' ignores options %s", ignored)
        context = LlamaContext(llama_cpp.Llama(**params))
        if not explicit and 0 < context.n_ctx_train < context.n_ctx:
            context.close()  # max_context_len is more than this model was trained on
            context = LlamaContext(llama_cpp.Llama(**{**params, 'n_ctx': context.n_ctx_train}))
        context.warm_up()
        meta = context.llm.metadata
        eos, bos = context.end_ids(), context.bos_id()
        config = ModelConfig(
            name=source.name, model_type=meta.get('general.architecture', 'llama'),
            max_context_len=context.n_ctx, vocab_size=context.n_vocab,
            eos_token_ids=eos, bos_token_id=bos,
            tokenizer_chat_template=meta.get('tokenizer.chat_template'), path=source.path)
        log.info('loaded %s with llama.cpp (n_ctx %d, %d threads, %d GPU layers) from %s',
                 source.name, config.max_context_len, threads, n_gpu_layers, source.path)
        return cls(context, config, bit_exact)

    # ---- text ----------------------------------------------------------------------------
    def grammar_tokenizer(self) -> Any:
        """Return llguidance's tokenizer, built from llama.cpp's vocabulary."""
        import llguidance.llamacpp
        with warnings.catch_warnings():  # it reads token attributes by a deprecated name
            warnings.simplefilter('ignore', DeprecationWarning)
            return llguidance.llamacpp.lltokenizer_from_vocab(
                self._c.vocab, n_vocab=self.config.vocab_size,
                eos_token=list(self.config.eos_token_ids) or None)

    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = False) -> List[int]:
        """Turn text into token ids; ``<|im_end|>`` and the like are markup only if ``special``."""
        if not text:
            return []
        return self.llm.tokenize(text.encode('utf-8'), add_bos=add_special_tokens,
                                 special=special)

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Turn token ids into text (a cut multi-byte character shows as U+FFFD)."""
        special = not skip_special_tokens
        if self._join_pieces:  # a dict lookup per token: the stream reader calls this a lot
            data = self._join(tokens, special)
        else:
            data = self._llama_detokenize(tokens, special)
        return data.decode('utf-8', errors='replace')

    def _join(self, tokens: Sequence[int], special: bool) -> bytes:
        table = self._pieces[special]
        try:
            return b''.join([table[t] for t in tokens])
        except KeyError:
            return b''.join([self._piece(int(t), special) for t in tokens])

    def _piece(self, token: int, special: bool) -> bytes:
        piece = self._pieces[special].get(token)
        if piece is None:
            self._check_ids([token])
            piece = self._pieces[special][token] = self._c.token_piece(token, special)
        return piece

    def _llama_detokenize(self, tokens: Sequence[int], special: bool) -> bytes:
        tokens = [int(t) for t in tokens]
        if not tokens:
            return b''
        self._check_ids(tokens)
        return self._c.detokenize(tokens, special)

    def _check_ids(self, tokens: Sequence[int]) -> None:
        # llama.cpp aborts the process on an id outside the vocabulary
        bad = [t for t in tokens if not 0 <= t < self._c.n_vocab]
        if bad:
            raise ValueError(f'token ids {bad[:5]} are not in the vocabulary of '
                             f'{self._c.n_vocab} tokens')

    def close(self) -> None:
        """Free the llama context and the model now, not when the interpreter finalizes."""
        with self._lock:
            if self.llm is not None:
                self._owner = None
                self._c.close()
                self.llm = None

    # ---- the cache -----------------------------------------------------------------------
    def new_cache(self) -> LlamaCppCache:
        """Return an empty cache handle."""
        return LlamaCppCache()

    @_locked
    def crop(self, cache: LlamaCppCache, length: int) -> None:
        """Drop every cached position from ``length`` on."""
        length = max(0, int(length))
        if length >= len(cache.tokens):
            return
        del cache.tokens[length:]
        cache.batched = min(cache.batched, length)
        if self._owns(cache):
            self._c.cut(length)
        elif length == 0:
            cache.saved = None  # an evicted handle is cut when it is restored

    @_locked
    def cache_state(self, cache: LlamaCppCache, length: int) -> Optional[bytes]:
        """Return a copy of ``cache``'s positions as llama.cpp's sequence state bytes."""
        if not cache.tokens or length != len(cache.tokens):
            return None  # a sequence state is saved whole
        data = self._c.save_sequence() if self._owns(cache) else cache.saved
        return bytes(data)

    @_locked
    def restore_cache(self, data: bytes, length: int) -> LlamaCppCache:
        """Return a new cache holding ``length`` positions from ``cache_state`` bytes."""
        cache = LlamaCppCache()
        self._claim(cache)
        if not self._c.load_sequence(data):
            raise ValueError('llama.cpp refused the saved state (another model or context '
                             'layout)')
        cache.tokens = [0] * length  # the caller's keys say which; only the count is used
        cache.batched = length
        self._c.cut(length)
        return cache

    def evaluated(self) -> int:
        """Return how many positions the model has run on this context (all caches)."""
        return self._c.evaluated()

    def _owns(self, cache: LlamaCppCache) -> bool:
        return self._owner is not None and self._owner() is cache

    def _claim(self, cache: LlamaCppCache) -> None:
        """Make ``cache``'s positions the ones the llama context holds."""
        if self._owns(cache):
            return
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner.tokens:
            owner.saved = self._c.save_sequence()
        self._c.cut(0)
        if cache.tokens:
            if cache.saved is None:
                raise RuntimeError('llama_cpp cache handle lost its state')  # internal invariant
            if not self._c.load_sequence(cache.saved):
                raise RuntimeError('llama.cpp could not restore a saved KV cache')
            self._c.cut(len(cache.tokens))  # it may be cropped since
        cache.saved = None
        self._owner = weakref.ref(cache)

    # ---- running the model ---------------------------------------------------------------
    def prefill(self, inputs: Inputs, cache: LlamaCppCache, start: int) -> np.ndarray:
        """Run ``inputs`` at positions ``start..`` into ``cache``; return the last logits (V,)."""
        return self.prefill_until(inputs, cache, start, None)

    @_locked
    def prefill_until(self, inputs: Inputs, cache: LlamaCppCache, start: int,
                      stopped: Any) -> np.ndarray:
        """Run ``prefill``; ``stopped()`` aborts it within one graph node (llama.cpp's)."""
        if not inputs.is_text:
            raise ValueError(f"api='llama_cpp' takes text only; {self.config.name} cannot take "
                             "images here (use api='hf' for vision models)")
        tokens = inputs.tokens
        if not tokens:
            raise ValueError('nothing to prefill')
        self._position(cache, start, len(tokens))
        if self.bit_exact:
            # decode-step positions are run again in this batch (see the module docstring)
            begin = cache.batched
            if start - begin + len(tokens) == 1 and begin > 0:
                begin -= 1  # never a lone token: batch it with the one before
            tokens = cache.tokens[begin:] + tokens
            self.crop(cache, begin)
            start = begin
        try:
            with self._c.abort_when(stopped):
                for chunk in _chunks(tokens, self._c.n_batch):
                    self._run(chunk, cache)
        except DecodeAborted:
            self.crop(cache, start)  # none of this prefill stays
            raise PrefillStopped(start) from None
        if len(tokens) > 1:
            cache.batched = len(cache.tokens)
        return self._c.logits()

    @_locked
    def decode_step(self, token: int, cache: LlamaCppCache, pos: int) -> np.ndarray:
        """Run one token at position ``pos``; return its logits (V,)."""
        self._position(cache, pos, 1)
        self._run([int(token)], cache)
        return self._c.logits()

    # ---- scoring a continuation (functions/choice.py) ----------------------------------------
    @_locked
    def continuation_logits(self, tokens: Sequence[int], cache: LlamaCppCache,
                            start: int) -> np.ndarray:
        """Return the logits (T, V) after each of ``tokens`` at ``start..``, batched."""
        tokens = [int(t) for t in tokens]
        self._check_ids(tokens)
        rows = []
        try:
            self._position(cache, start, len(tokens))
            for chunk in _chunks(tokens, self._c.n_batch):
                self._c.decode(chunk, len(cache.tokens), every=True)
                cache.tokens.extend(chunk)
                rows.extend(self._c.logits(i) for i in range(len(chunk)))  # (V,) each
        finally:
            self.crop(cache, start)  # a trial: the cache holds what it held before
        return np.stack(rows) if rows else np.zeros((0, self.config.vocab_size), np.float32)

    def _position(self, cache: LlamaCppCache, start: int, count: int) -> None:
        # the caller's record of the cache decides; a shorter record (an aborted step) wins
        self._claim(cache)
        if start < len(cache.tokens):
            self.crop(cache, start)
        elif start > len(cache.tokens):
            raise RuntimeError(f'the llama_cpp cache holds {len(cache.tokens)} positions, '
                               f'cannot continue at {start}')  # internal invariant
        if start + count > self.config.max_context_len:
            raise ValueError(f'{start + count} positions do not fit n_ctx='
                             f'{self.config.max_context_len}; wrap the chat or raise n_ctx')

    def _run(self, tokens: List[int], cache: LlamaCppCache) -> None:
        self._c.decode(tokens, len(cache.tokens))
        cache.tokens.extend(tokens)


def _chunks(tokens: List[int], size: int) -> Iterator[List[int]]:
    """Split ``tokens`` into batches of at most ``size``, none of one token (unless all is)."""
    i = 0
    while i < len(tokens):
        n = min(size, len(tokens) - i)
        if len(tokens) - i - n == 1 and n > 2:
            n -= 1  # leave two for the last batch, not one
        yield tokens[i:i + n]
        i += n


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as error:
        raise RuntimeError(
            "api='llama_cpp' needs llama-cpp-python (the 'llama_cpp' extra): pip install "
            "'ros2_nano_llm[llama_cpp]' or 'llama-cpp-python==0.3.36' (it compiles llama.cpp, "
            'about 10 minutes on two cores)') from error
    return llama_cpp


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)

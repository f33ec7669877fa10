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
sequence state into its handle (``llama_state_seq_get_data``) and restores the new one's,
so every handle behaves like a cache of its own, bit for bit.

llama.cpp computes a lone token (a decode step) slightly differently from the same token in a
batch of two or more, while batches of any size >= 2 agree bit for bit. A recompute of the
chat prefills it in batches, so the positions a reply decoded one at a time are run again,
batched with the next prefill; the cache then holds exactly what a recompute would.
"""

import ctypes
import functools
import inspect
import logging
import os
import threading
from typing import Any, Iterator, List, Optional, Sequence
import warnings
import weakref

import numpy as np

from .backend import LogitsBackend
from .base import Inputs, ModelConfig
from .loading import ModelSource

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096  # when neither n_ctx nor max_context_len is given (capped by the model)


def _locked(method):
    """Run ``method`` holding the backend's context lock."""
    @functools.wraps(method)
    def run(self, *args):
        with self._lock:
            return method(self, *args)
    return run


class LlamaCppCache:
    """
    One KV cache on a llama context: the tokens it holds, and its saved state.

    Positions ``[0, batched)`` were computed in batches; later ones by decode steps.
    ``saved`` holds the sequence's state bytes while another handle owns the context.
    """

    __slots__ = ('tokens', 'batched', 'saved', '__weakref__')

    def __init__(self):
        self.tokens: List[int] = []
        self.batched = 0
        self.saved: Optional[ctypes.Array] = None

    def __len__(self) -> int:
        return len(self.tokens)


class LlamaCppBackend(LogitsBackend):
    """A GGUF model run token by token on one llama.cpp context (see the module docstring)."""

    name = 'llama_cpp'

    def __init__(self, llm: Any, config: ModelConfig):
        import llama_cpp
        self._lib = llama_cpp
        self.llm = llm
        self.config = config
        self._ctx = llm._ctx          # internals.LlamaContext
        self._batch = llm._batch      # internals.LlamaBatch sized n_batch
        self._vocab = llm._model.vocab
        self._n_batch = llm.n_batch
        self._n_vocab = llm.n_vocab()
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
             n_batch: int = 512, **kwargs) -> 'LlamaCppBackend':
        """
        Load a GGUF file into a llama.cpp context.

        ``n_ctx`` (else ``max_context_len``, else the model's limit up to 4096) sizes the KV
        cache; ``n_threads`` defaults to every CPU this process may use; ``n_gpu_layers``
        defaults to all layers where llama.cpp was built with GPU offload. Other keyword
        arguments that ``llama_cpp.Llama`` takes (``flash_attn``, ``type_k``, ...) are passed on.
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
        wanted = int(n_ctx or max_context_len or 0)
        if threads < 1 or wanted < 0:
            raise ValueError(f'n_threads must be >= 1 and n_ctx > 0, got {n_threads}, {n_ctx}')
        params = {'model_path': source.path, 'n_ctx': wanted or DEFAULT_N_CTX,
                  'n_threads': threads,
                  'n_threads_batch': int(kwargs.pop('n_threads_batch', None) or threads),
                  'n_gpu_layers': int(n_gpu_layers), 'n_batch': int(n_batch),
                  'logits_all': False, 'verbose': False}
        accepted = set(inspect.signature(llama_cpp.Llama.__init__).parameters) - set(params)
        params.update({k: v for k, v in kwargs.items() if k in accepted and v is not None})
        ignored = sorted(k for k in kwargs if k not in accepted)
        if ignored:
            log.warning("api='llama_cpp' ignores options %s", ignored)
        llm = llama_cpp.Llama(**params)
        train_ctx = llm._model.n_ctx_train()
        if not wanted and 0 < train_ctx < llm.n_ctx():
            llm.close()  # the default is more than this model was trained on
            llm = llama_cpp.Llama(**{**params, 'n_ctx': train_ctx})
        meta = llm.metadata
        vocab = llm._model.vocab
        eos = [llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab)]
        bos = llama_cpp.llama_vocab_bos(vocab)
        config = ModelConfig(
            name=source.name, model_type=meta.get('general.architecture', 'llama'),
            max_context_len=llm.n_ctx(), vocab_size=llm.n_vocab(),
            eos_token_ids=list(dict.fromkeys(int(t) for t in eos if t >= 0)),
            bos_token_id=int(bos) if bos >= 0 else None,
            tokenizer_chat_template=meta.get('tokenizer.chat_template'), path=source.path)
        log.info('loaded %s with llama.cpp (n_ctx %d, %d threads, %d GPU layers) from %s',
                 source.name, config.max_context_len, threads, n_gpu_layers, source.path)
        return cls(llm, config)

    # ---- text ----------------------------------------------------------------------------
    def grammar_tokenizer(self) -> Any:
        """Return llguidance's tokenizer, built from llama.cpp's vocabulary."""
        import llguidance.llamacpp
        with warnings.catch_warnings():  # it reads token attributes by a deprecated name
            warnings.simplefilter('ignore', DeprecationWarning)
            return llguidance.llamacpp.lltokenizer_from_vocab(
                self.llm._model.vocab, n_vocab=self.config.vocab_size,
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
            size = 64
            for _ in range(2):
                buf = ctypes.create_string_buffer(size)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, size, 0, special)
                if n >= 0:
                    break
                size = -n  # too small: llama.cpp says how much it needs
            piece = self._pieces[special][token] = buf.raw[:n]
        return piece

    def _llama_detokenize(self, tokens: Sequence[int], special: bool) -> bytes:
        tokens = [int(t) for t in tokens]
        if not tokens:
            return b''
        self._check_ids(tokens)
        ids = (self._lib.llama_token * len(tokens))(*tokens)
        size = 8 * len(tokens) + 16
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_detokenize(self._vocab, ids, len(tokens), buf, size, False,
                                           special)
            if n >= 0:
                return buf.raw[:n]
            size = -n + 1  # too small: llama.cpp says how much it needs
        raise RuntimeError('llama_detokenize failed')

    def _check_ids(self, tokens: Sequence[int]) -> None:
        # llama.cpp aborts the process on an id outside the vocabulary
        bad = [t for t in tokens if not 0 <= t < self._n_vocab]
        if bad:
            raise ValueError(f'token ids {bad[:5]} are not in the vocabulary of '
                             f'{self._n_vocab} tokens')

    def close(self) -> None:
        """Free the llama context and the model now, not when the interpreter finalizes."""
        with self._lock:
            if self.llm is not None:
                self._owner = None
                self._ctx = self._batch = None
                self.llm.close()
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
            self._ctx.kv_cache_seq_rm(0, length, -1)
        elif length == 0:
            cache.saved = None  # an evicted handle is cut when it is restored

    def _owns(self, cache: LlamaCppCache) -> bool:
        return self._owner is not None and self._owner() is cache

    def _claim(self, cache: LlamaCppCache) -> None:
        """Make ``cache``'s positions the ones the llama context holds."""
        if self._owns(cache):
            return
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner.tokens:
            owner.saved = self._save()
        self._ctx.kv_cache_seq_rm(0, 0, -1)
        if cache.tokens:
            if cache.saved is None:
                raise RuntimeError('llama_cpp cache handle lost its state')  # internal invariant
            if not self._lib.llama_state_seq_set_data(self._ctx.ctx, cache.saved,
                                                      len(cache.saved), 0):
                raise RuntimeError('llama.cpp could not restore a saved KV cache')
            self._ctx.kv_cache_seq_rm(0, len(cache.tokens), -1)  # it may be cropped since
        cache.saved = None
        self._owner = weakref.ref(cache)

    def _save(self) -> ctypes.Array:
        size = self._lib.llama_state_seq_get_size(self._ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        self._lib.llama_state_seq_get_data(self._ctx.ctx, buf, size, 0)
        return buf

    # ---- running the model ---------------------------------------------------------------
    @_locked
    def prefill(self, inputs: Inputs, cache: LlamaCppCache, start: int) -> np.ndarray:
        """Run ``inputs`` at positions ``start..`` into ``cache``; return the last logits (V,)."""
        if not inputs.is_text:
            raise ValueError(f"api='llama_cpp' takes text only; {self.config.name} cannot take "
                             "images here (use api='hf' for vision models)")
        tokens = inputs.tokens
        if not tokens:
            raise ValueError('nothing to prefill')
        self._position(cache, start, len(tokens))
        # decode-step positions are run again in this batch (see the module docstring)
        begin = cache.batched
        if start - begin + len(tokens) == 1 and begin > 0:
            begin -= 1  # never a lone token: batch it with the one before
        tokens = cache.tokens[begin:] + tokens
        self.crop(cache, begin)
        for chunk in _chunks(tokens, self._n_batch):
            self._run(chunk, cache)
        if len(tokens) > 1:
            cache.batched = len(cache.tokens)
        return self._last_logits()

    @_locked
    def decode_step(self, token: int, cache: LlamaCppCache, pos: int) -> np.ndarray:
        """Run one token at position ``pos``; return its logits (V,)."""
        self._position(cache, pos, 1)
        self._run([int(token)], cache)
        return self._last_logits()

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
        self._batch.set_batch(tokens, len(cache.tokens), False)  # logits of the last only
        self._ctx.decode(self._batch)
        cache.tokens.extend(tokens)

    def _last_logits(self) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))  # (V,) view of llama's buffer
        return logits.copy()  # (V,) float32


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

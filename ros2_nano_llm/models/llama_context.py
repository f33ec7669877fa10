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
The one adapter over llama-cpp-python's low-level calls.

``llama_cpp.Llama`` loads the model and the context and owns their lifetime; everything
the backend does on them goes through :class:`LlamaContext`, which calls llama.cpp's C API
(``llama_decode``, ``llama_memory_seq_rm``, ``llama_state_seq_*``, ``llama_get_logits_ith``)
on the raw pointers. The pointers are read from the ``Llama`` object here and nowhere else,
so a llama-cpp-python release that renames its private attributes breaks one constructor.
"""

import contextlib
import ctypes
from typing import Any, Callable, Iterator, List, Optional, Sequence

import numpy as np

SEQ = 0  # the one llama.cpp sequence this project uses per context
ABORTED = 2  # what llama_decode returns when the abort callback asked it to stop


class DecodeAborted(RuntimeError):
    """``llama_decode`` stopped because the abort callback said so; its positions are cut."""


class LlamaContext:
    """Decode batches, read logits, cut positions and move sequence state on one context."""

    def __init__(self, llm: Any):
        import llama_cpp
        self._lib = llama_cpp
        self.llm = llm
        # the only place llama-cpp-python's private attributes are read
        self.ctx = llm._ctx.ctx          # llama_context *
        self.model = llm._model.model    # llama_model *
        self.vocab = llm._model.vocab    # llama_vocab *
        self.n_batch = int(llm.n_batch)
        self.n_ctx = int(llm.n_ctx())
        self.n_vocab = int(llm.n_vocab())
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self.model))
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        # called by ggml between graph nodes while set (prefills only: it takes the GIL)
        self._stopped: Optional[Callable[[], bool]] = None
        self._abort_fn = llama_cpp.ggml_abort_callback(self._abort_requested)

    def warm_up(self) -> None:
        """
        Run one token and forget it, the way llama.cpp's own tools warm up after loading.

        The first decode on a context pages the mapped weights in and starts the compute
        threads; done here, that cost is part of loading, not of the first reply.
        """
        token = self.bos_id()
        if token is None:
            token = (self.end_ids() or [0])[0]
        self._lib.llama_set_warmup(self.ctx, True)
        try:
            self.decode([token], 0)
        finally:
            self._lib.llama_set_warmup(self.ctx, False)
            self.cut(0)
            self._lib.llama_perf_context_reset(self.ctx)  # evaluated() counts real work only

    @contextlib.contextmanager
    def abort_when(self, stopped: Optional[Callable[[], bool]]) -> Iterator[None]:
        """Let ``stopped()`` turning True end a ``decode()`` within one graph node."""
        if stopped is None:
            yield
            return
        self._stopped = stopped
        self._lib.llama_set_abort_callback(self.ctx, self._abort_fn, None)
        try:
            yield
        finally:
            # unset for decode steps: a Python callback per graph node would slow them
            self._lib.llama_set_abort_callback(self.ctx, self._lib.ggml_abort_callback(), None)
            self._stopped = None

    def _abort_requested(self, _data: Any) -> bool:
        stopped = self._stopped
        return bool(stopped is not None and stopped())

    def end_ids(self) -> List[int]:
        """Return the end-of-sequence and end-of-turn token ids (once each)."""
        ids = [self._lib.llama_vocab_eos(self.vocab), self._lib.llama_vocab_eot(self.vocab)]
        return list(dict.fromkeys(int(t) for t in ids if t >= 0))

    def bos_id(self) -> Optional[int]:
        """Return the begin-of-sequence token id, or None."""
        bos = self._lib.llama_vocab_bos(self.vocab)
        return int(bos) if bos >= 0 else None

    def decode(self, tokens: Sequence[int], start: int, every: bool = False) -> None:
        """Run ``tokens`` (at most ``n_batch``) at ``start..``; logits of the last (every: all)."""
        batch, n = self._batch, len(tokens)
        assert 0 < n <= self.n_batch, n  # the backend splits into batches
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = SEQ
            batch.logits[i] = every
        batch.logits[n - 1] = True
        code = self._lib.llama_decode(self.ctx, batch)
        if code == ABORTED and self._stopped is not None:
            self.cut(start)  # llama.cpp drops the aborted batch's cells; make sure of it
            raise DecodeAborted('llama_decode was aborted')
        if code != 0:
            raise RuntimeError(f'llama_decode returned {code} (1: no room in the KV cache, '
                               '2: aborted, < 0: error)')
        # the batch is done (CPU) or queued (GPU): wait, so evaluated() counts it already
        self._lib.llama_synchronize(self.ctx)

    def evaluated(self) -> int:
        """Return how many positions this context has run so far (llama.cpp's counters)."""
        perf = self._lib.llama_perf_context(self.ctx)
        return int(perf.n_p_eval) + int(perf.n_eval)

    def logits(self, row: int = -1) -> np.ndarray:
        """Return a copy of the scores (V,) float32 of the batch's ``row`` (-1: the last)."""
        ptr = self._lib.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()  # (V,)

    def cut(self, start: int) -> None:
        """Drop the sequence's positions from ``start`` on (0: all of them)."""
        self._lib.llama_memory_seq_rm(self._memory, SEQ, int(start), -1)

    def save_sequence(self) -> ctypes.Array:
        """Return the sequence's state (its KV cells) as a new byte buffer."""
        size = self._lib.llama_state_seq_get_size(self.ctx, SEQ)
        buf = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self.ctx, buf, size, SEQ)
        if written != size:
            raise RuntimeError(f'llama.cpp wrote {written} of {size} state bytes')
        return buf

    def load_sequence(self, data: Any) -> bool:
        """Replace the sequence with saved state ``data``; False when llama.cpp refuses it."""
        self.cut(0)
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        ok = self._lib.llama_state_seq_set_data(self.ctx, data, len(data), SEQ) != 0
        if not ok:
            self.cut(0)  # never leave half a state behind
        return ok

    def token_piece(self, token: int, special: bool) -> bytes:
        """Return the bytes of one token."""
        size = 64
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n  # too small: llama.cpp says how much it needs
        raise RuntimeError('llama_token_to_piece failed')

    def detokenize(self, tokens: Sequence[int], special: bool) -> bytes:
        """Return the bytes of ``tokens`` as llama.cpp joins them."""
        ids = (self._lib.llama_token * len(tokens))(*tokens)
        size = 8 * len(tokens) + 16
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_detokenize(self.vocab, ids, len(tokens), buf, size, False,
                                           special)
            if n >= 0:
                return buf.raw[:n]
            size = -n + 1  # too small: llama.cpp says how much it needs
        raise RuntimeError('llama_detokenize failed')

    def close(self) -> None:
        """Free the batch, then the context and model (``Llama.close``)."""
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        self.llm.close()

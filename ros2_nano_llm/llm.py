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

import atexit
from collections import deque
from concurrent.futures import Future
import functools
import logging
import queue
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union
import weakref

import numpy as np

from .chat.stream import StreamingResponse
from .constraints import Grammars
from .futures import run_into
from .generation import GenerationJob, run
from .models import auto_api, get_backend
from .models.backend import Backend
from .models.base import Inputs, KVCache, TokenArray
from .models.sampling import SamplingParams
from .settings import SAMPLING_DEFAULTS as _SAMPLING

log = logging.getLogger(__name__)

# text, token ids (list, numpy, torch), an embedding (T, D) (numpy, torch), or an Inputs
InputLike = Union[str, Sequence[int], np.ndarray, Any, Inputs]

# what the worker thread runs: a reply, or a call of submit() with its Future
_Work = Union[GenerationJob, Tuple[Callable[[], Any], Future]]


class NanoLLM:
    """
    A loaded language model with the NanoLLM generation API.

    One worker thread per model runs, in order, the replies of ``generate()`` and the calls
    of ``submit()``; it starts with the first of them and ends with ``close()``. While it
    runs, an exit hook of this model's closes it at interpreter exit (nothing is registered
    at import, and ``close()`` takes the hook back).
    """

    def __init__(self, backend: Backend, api: str):
        self.backend = backend
        self.api = api
        self.config = backend.config
        self.stats: Dict[str, float] = {}
        self._jobs: 'queue.Queue[Optional[_Work]]' = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._lock = threading.Lock()        # guards the worker and the queue
        self._close_lock = threading.Lock()  # one close() at a time
        self._current: Optional[GenerationJob] = None
        # the replies a call of submit() started: they run right after it, before the queue
        self._next: 'deque[GenerationJob]' = deque()
        self._closing = False
        self._exit_hook: Optional[Callable[[], None]] = None  # registered with the worker
        self.grammars = Grammars(backend)  # tool_choice / response_format constraints

    def __enter__(self) -> 'NanoLLM':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def from_pretrained(model: str, api: Optional[str] = None, quantization: Optional[str] = None,
                        max_context_len: Optional[int] = None, **kwargs) -> 'NanoLLM':
        """
        Load ``model``: a local directory, a .gguf file, a hub id, or ``'default'``.

        ``api`` picks the backend: ``'hf'``, ``'llama_cpp'``, ``'openai'``, ``'mlc'``, or
        None / ``'auto'``: llama_cpp for a GGUF model (``'default'`` is one) when
        llama-cpp-python is installed, else hf. ``max_context_len`` caps the context window;
        other keyword arguments go to the backend.
        """
        api = auto_api(model) if api in (None, '', 'auto') else api
        backend_cls = get_backend(api)
        # a backend may name models its own way (a server's model names)
        source = backend_cls.resolve(model)
        backend = backend_cls.load(source, quantization=quantization,
                                   max_context_len=max_context_len, **kwargs)
        return NanoLLM(backend, api)

    # ---- model facts -------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """Return the backend's tokenizer object (None where the backend has none)."""
        return self.backend.tokenizer

    @property
    def has_vision(self) -> bool:
        """Return True when the model takes images."""
        return self.config.has_vision

    @property
    def name(self) -> str:
        """Return the model's name."""
        return self.config.name

    def tokenize(self, text: str, add_special_tokens: bool = False,
                 special: bool = False) -> np.ndarray:
        """
        Return the token ids of ``text`` as a 1-D int64 array.

        Control-token text such as ``<|im_end|>`` stays plain text unless ``special=True``
        (for template markup only).
        """
        return np.asarray(self.backend.tokenize(text, add_special_tokens, special),
                          dtype=np.int64)

    def detokenize(self, tokens: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Return the text of ``tokens``."""
        return self.backend.detokenize([int(t) for t in tokens], skip_special_tokens)

    def embed_text(self, text: str) -> Any:
        """Return the input embeddings (T, D) of ``text`` (api='hf' only)."""
        return self.backend.embed_inputs(Inputs.from_tokens(self.backend.tokenize(text)))

    def embed_image(self, image: Any) -> Any:
        """Return the embedding (T, D) of an image (vision models only)."""
        if not self.has_vision:
            raise ValueError(f'{self.name} is a text-only model and cannot take images')
        return self.backend.embed_image(image)

    def new_cache(self) -> KVCache:
        """Return an empty KV cache for this model."""
        return KVCache(self.backend)

    # ---- generation --------------------------------------------------------------------
    def generate(self, inputs: InputLike, streaming: bool = True,
                 max_new_tokens: int = _SAMPLING['max_new_tokens'],
                 min_new_tokens: int = _SAMPLING['min_new_tokens'],
                 do_sample: bool = _SAMPLING['do_sample'],
                 temperature: float = _SAMPLING['temperature'],
                 top_p: float = _SAMPLING['top_p'],
                 repetition_penalty: float = _SAMPLING['repetition_penalty'],
                 stop_tokens: Optional[Sequence[Union[int, str]]] = None,
                 kv_cache: Optional[KVCache] = None, functions: Any = None,
                 template: Any = None, reply_prefix: Optional[str] = None,
                 seed: Optional[int] = None, timeout: Optional[float] = 300.0,
                 tool_choice: Optional[str] = None, response_format: Optional[dict] = None,
                 constraint: Any = None, max_calls: Optional[int] = None,
                 **kwargs) -> Union[StreamingResponse, str]:
        """
        Generate a reply to ``inputs`` after what ``kv_cache`` holds.

        ``inputs`` is text, token ids or an ``Inputs`` (from ``ChatHistory.embed_chat()``).
        ``functions`` (bot functions) run when the reply calls them; their results are fed
        back in the ``template``'s format (default: the model's). ``reply_prefix`` is text
        the reply must start with; ``seed`` makes sampling repeatable. ``tool_choice``
        (OpenAI's meanings; hf and llama_cpp constrain the calls with a grammar): ``'auto'``
        (default: free text, a call the model starts is completed validly), ``'required'``
        (the reply starts with a call, its one call: after the result, text in which no
        call opens), a function's name (that one is called, once) or ``'none'`` (no
        calls). ``response_format`` constrains the reply to a JSON schema
        (``{'type': 'json_schema', 'json_schema': {'schema': ...}}``), a regex
        (``{'type': 'regex', 'regex': ...}``) or a Lark grammar (``{'type': 'grammar',
        'grammar': ...}``). ``constraint`` is any other object with ``mask(logits)`` on
        float32 numpy logits (V,), ``advance(token)`` and ``done()``. ``max_calls`` bounds
        the function calls of the reply (None: no limit; past it a call is not run and the
        model reads why). A stop string of several
        tokens ends the reply and is not kept in it. The sampling defaults are the settings
        table's (``ros2_nano_llm.settings``), as are the node's and the terminal chat's.
        Returns a ``StreamingResponse`` that fills from the model's worker thread, or the
        finished text when ``streaming=False`` (not from that thread: it would wait on itself).
        """
        if not streaming and threading.current_thread() is self._worker:
            raise RuntimeError("generate(streaming=False) on the model's worker thread would "
                               'wait for itself; subscribe() to the streaming reply instead')
        if kwargs:
            raise TypeError(f'generate() got unexpected arguments: {sorted(kwargs)}')
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        params = SamplingParams(do_sample, temperature, top_p, repetition_penalty)
        prompt = self._to_inputs(inputs)
        cache = kv_cache if kv_cache is not None else self.new_cache()
        stream = StreamingResponse(self.detokenize, timeout=timeout, kv_cache=cache)
        hook = None
        if functions and tool_choice != 'none':
            from .chat.templates import template_for
            from .functions.streaming import FunctionHook
            # a forced call ('required' or a name) is the reply's one call
            forced = tool_choice not in (None, 'auto')
            if forced:
                max_calls = 1 if max_calls is None else min(max_calls, 1)
            hook = FunctionHook(self, functions, template_for(self.config, template),
                                max_calls=max_calls, forced=forced)
            # a call's closing markup ('</tool_call>', a stop of chat-ml-tools) completes the
            # call: the hook runs it and the reply goes on, instead of ending unrun
            stop_tokens = [s for s in stop_tokens or () if s not in hook.CALL_CLOSERS]
        stop_ids, stop_strings = self._stop_tokens(stop_tokens)
        # the prefix is the program's markup (a tool-call marker), not user text
        prefix = self.backend.tokenize(reply_prefix, special=True) if reply_prefix else []
        prompt.check(cache)  # a stale embed_chat() result fails here, in the caller's thread
        choice = None
        if constraint is None:
            constraint = self.grammars.constraint(hook, functions, tool_choice, response_format,
                                                  stop_ids, prefix)
            choice = constraint.choice if constraint is not None else None
        self._submit(GenerationJob(
            prompt, cache, stream, params, max_new_tokens, min_new_tokens, stop_ids,
            stop_strings, hook, prefix, seed=seed, constraint=constraint, choice=choice))
        return stream if streaming else stream.wait()

    def _to_inputs(self, inputs: InputLike) -> Inputs:
        if isinstance(inputs, Inputs):
            prompt = inputs
        elif isinstance(inputs, TokenArray):
            prompt = inputs.to_inputs()  # from embed_chat(): keeps the cache it follows
        elif isinstance(inputs, str):
            prompt = Inputs.from_tokens(self.backend.tokenize(inputs))
        elif _is_float_array(inputs):
            prompt = Inputs()  # an embedding (T, D): the backend takes it as it is
            prompt.add_embedding(inputs.reshape(-1, inputs.shape[-1]))
        else:
            if hasattr(inputs, 'cpu'):  # a torch tensor of token ids
                inputs = inputs.cpu().numpy()
            prompt = Inputs.from_tokens(np.asarray(inputs).reshape(-1).tolist())
        if len(prompt) == 0:
            raise ValueError('empty prompt: nothing to generate from')
        return prompt

    def _stop_tokens(self, stop_tokens):
        # a stop string that is one (control) token stops on the id; longer ones on the text
        ids = set(self.config.eos_token_ids)
        strings = []
        for stop in stop_tokens or ():
            if isinstance(stop, str):
                tokens = self.backend.tokenize(stop, special=True)
                if len(tokens) == 1:
                    ids.add(tokens[0])
                elif tokens:
                    strings.append(stop)
            else:
                ids.add(int(stop))
        return sorted(ids), strings

    def submit(self, fn: Callable[[], Any]) -> Future:
        """
        Run ``fn()`` on the model's worker thread after the work queued before it.

        Returns its ``concurrent.futures.Future``. ``fn`` never runs during a reply, and a
        reply it starts with ``generate()`` runs right after it: a chat driven this way
        (the node's) needs no thread of its own.
        """
        future: Future = Future()
        self._submit((fn, future))
        return future

    def _submit(self, work: _Work) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError(f"'{self.name}' is closed")
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name='nano_llm.generate',
                                                daemon=True)
                if self._exit_hook is None:  # this model's own hook, while its worker lives
                    self._exit_hook = functools.partial(_close_at_exit, weakref.ref(self))
                    atexit.register(self._exit_hook)
                self._worker.start()
            if isinstance(work, GenerationJob) and \
                    threading.current_thread() is self._worker:
                self._next.append(work)  # started by a submit()ted call: it runs next
                return
            self._jobs.put(work)

    def _work(self) -> None:
        while True:
            work = self._next.popleft() if self._next else self._jobs.get()
            if work is None:
                return
            if not isinstance(work, GenerationJob):
                fn, future = work
                run_into(future, fn)
                continue
            self._current = work
            try:
                run(self.backend, work, self.stats)
            except Exception as error:  # noqa: BLE001 - the thread outlives any one reply
                log.exception('generation failed outside its loop')
                if not work.stream.done:
                    work.stream.end(reason='error', error=error)
            finally:
                self._current = None

    def _pending_streams(self):
        # the replies not yet finished: the one running and the queued ones
        with self._jobs.mutex:
            jobs = [j for j in self._jobs.queue if isinstance(j, GenerationJob)]
        jobs = list(self._next) + jobs
        current = self._current
        return [j.stream for j in ([current] if current is not None else []) + jobs]

    def close(self) -> None:
        """Stop the replies in progress and the worker thread, then free the model."""
        if threading.current_thread() is self._worker:
            raise RuntimeError("close() cannot run on the model's own worker thread")
        with self._close_lock:  # a second close() waits for the first to finish
            with self._lock:
                worker = self._worker
                self._closing = True  # submit() refuses from now on
                if worker is not None and worker.is_alive():
                    for stream in self._pending_streams():
                        stream.stop()  # each ends at its next token, its cache consistent
                    self._jobs.put(None)
            if worker is not None:
                worker.join()  # outside _lock: work still queued may submit (and be refused)
            self._worker = None
            if self._exit_hook is not None:
                atexit.unregister(self._exit_hook)
                self._exit_hook = None
            if self.backend is not None:
                self.backend.close()
                self.backend = None


def _is_float_array(value: Any) -> bool:
    # numpy arrays and torch tensors alike, without importing torch
    return 'float' in str(getattr(value, 'dtype', '')) and len(getattr(value, 'shape', ())) >= 1


def _close_at_exit(ref: 'weakref.ReferenceType[NanoLLM]') -> None:
    # a worker still inside llama.cpp or torch while the interpreter finalizes aborts the
    # process ("terminate called without an active exception"): stop it in order first
    model = ref()
    if model is not None:
        model.close()

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
r"""
Choose the function of a required call by likelihood, then let the grammar write the call.

Token-by-token decoding picks a call's name by its first token: with a small model a word
of the request ("It is too dark, *turn* the lights on") wins the first token for the wrong
function (``turn(``), and the grammar then has to finish that name. Scoring each listed
name as a whole after the prompt does not help a model this small (measured in
``benchmarks/function_calls.py --mode robot``: its names' prior, such as the first listed
function's, outweighs the request). What works is the other direction: how likely the
request is as a command for each function, from that function's description alone,

    score(f) = log P(request | "The robot function <f's docs line>\nA command that calls it:")

the total log-probability of the request's tokens, each from the model's own logits. The
best-scoring function is chosen; constrained decoding then writes the call (its name and
its arguments) with that function alone.

:class:`NameChoice` is built with the reply's functions and chat template (which says where
the request, the last user message, sits in the prompt) and runs on the model's worker
thread inside the generation loop, on a scratch cache of its own.
"""

import time
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from ..models.base import Inputs

# run(tokens) -> the logits (T, V) after each token, the tokens tried after a context
Runner = Callable[[Sequence[int]], np.ndarray]
# what each function's description is framed as; the request follows it
CONTEXT = 'The robot function {doc}\nA command that calls it:'
MESSAGE = '${MESSAGE}'
# the request's tokens scored at most: a long message costs no more than a command
MAX_REQUEST_TOKENS = 64


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return the log-probabilities of ``logits`` (..., V) over the last axis (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def continuation_logprob(first: np.ndarray, tokens: Sequence[int], run: Runner) -> float:
    """
    Return the total log-probability of ``tokens`` after a context.

    ``first`` (V,) is the context's last logits (they predict ``tokens[0]``); ``run`` gives
    the logits after each of ``tokens[:-1]`` (they predict the rest).
    """
    if not tokens:
        return 0.0
    rows = [np.asarray(first)[None, :]]  # (1, V)
    if len(tokens) > 1:
        rows.append(np.asarray(run(list(tokens[:-1]))))  # (T - 1, V)
    logp = log_softmax(np.concatenate(rows, axis=0))  # (T, V)
    return float(logp[np.arange(len(tokens)), list(tokens)].sum())


def last_message(text: str, template: Any, role: str = 'user') -> Optional[str]:
    """Return the text of the last ``role`` message in a rendered prompt, or None."""
    prefix, _, suffix = template.roles[role].partition(MESSAGE)
    start = text.rfind(prefix) if prefix else -1
    if start < 0:
        return None
    start += len(prefix)
    end = text.find(suffix, start) if suffix else -1
    message = text[start:end if end >= 0 else len(text)].strip()
    return message or None


class NameChoice:
    """
    The choice of one reply's function among ``records`` (see the module docstring).

    ``template`` is the reply's ``ChatTemplate``; ``pick(name)`` is told the choice (the
    constraint narrows its grammar to that function). After :meth:`choose`, ``scores``
    holds every function's score, ``chosen`` the name (None when the prompt holds no
    request: the name is then decoded token by token) and ``seconds`` the time it took.
    """

    def __init__(self, records: Sequence[Any], template: Any, pick: Callable[[str], None]):
        if not records:
            raise ValueError('no functions to choose from')
        self.records = list(records)
        self.template = template
        self.pick = pick
        self.scores: Dict[str, float] = {}
        self.chosen: Optional[str] = None
        self.seconds = 0.0

    def choose(self, backend: Any, prompt: Sequence[Any]) -> Optional[str]:
        """
        Score each function for the request in ``prompt`` (its cache keys); pick the best.

        ``backend`` is the reply's ``LogitsBackend``; the scoring runs on a new cache of it.
        """
        start = time.perf_counter()
        text = backend.detokenize([k for k in prompt if isinstance(k, int)])
        request = last_message(text, self.template)
        if request is None:
            return None
        target = backend.tokenize(' ' + request)[:MAX_REQUEST_TOKENS]
        cache = backend.new_cache()
        try:
            for record in self.records:
                context = backend.tokenize(CONTEXT.format(doc=record.doc_line()))
                backend.crop(cache, 0)
                first = backend.prefill(Inputs.from_tokens(context), cache, 0)  # (V,)
                self.scores[record.name] = continuation_logprob(
                    first, target, lambda t, n=len(context): backend.continuation_logits(
                        t, cache, n))
        finally:
            backend.crop(cache, 0)
        # ties go to the first listed, as the functions were given
        self.chosen = max(self.scores, key=self.scores.get)
        self.seconds = time.perf_counter() - start
        self.pick(self.chosen)
        return self.chosen

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
Grammar-constrained decoding for the logits backends (hf, llama_cpp), built on llguidance.

A :class:`Constraint` is what the generation loop consults for each token::

    logits = constraint.mask(logits)   # tokens the grammar forbids -> -inf, before sampling
    constraint.advance(token)          # after the token is accepted
    constraint.done()                  # True: the grammar is complete, end the reply

When ``done()`` turns True the loop ends the reply as if a stop token came (reason
``'eos'``), giving the function hook a final look: a ``'required'`` call is complete, the
hook runs it and injects its result, and the reply goes on as free text in which calls are
still completed validly (the constraint switches grammar when the hook says a call ran).
A complete JSON reply (``response_format``) simply ends there. While the grammar is
complete but could go on, the template's stop tokens are allowed as well.

:class:`Grammars` (one per ``NanoLLM``) holds llguidance's view of the vocabulary (built
once, about a second) and turns ``generate()``'s ``tool_choice`` and ``response_format``
into a constraint, raising ``ValueError`` for an unknown function name, a bad schema or
grammar.
"""

import json
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .functions.choice import NameChoice
from .functions.grammar import call_grammar, prose_grammar, response_grammar
from .models.backend import LogitsBackend

TOOL_CHOICES = ('auto', 'required', 'none')


class Constraint:
    """
    One reply's grammar state: masks logits, follows the accepted tokens.

    ``then`` is the grammar that follows once a call has run and its result joined the
    reply (``'required'`` or a name: free text in which no call opens, so the reply makes
    one call); without it the grammar starts over after each call (``'auto'``).
    """

    def __init__(self, tokenizer: Any, grammar: str, vocab_size: int,
                 stop_ids: Sequence[int] = (), then: Optional[str] = None,
                 prefix: Sequence[int] = ()):
        self._matcher = _matcher(tokenizer, grammar)
        self._then = _matcher(tokenizer, then) if then else None
        self.vocab_size = int(vocab_size)
        self._words = np.zeros((1, (self.vocab_size + 31) // 32), dtype=np.int32)  # (1, V/32)
        self._stop = np.array([t for t in stop_ids if 0 <= t < self.vocab_size], dtype=np.int64)
        self.seconds = 0.0  # time spent masking and following tokens (benchmarks read it)
        if prefix and self._matcher.try_consume_tokens(list(prefix)) < len(prefix):
            self._matcher.reset()  # a reply_prefix outside the grammar: it starts after it

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """Return float32 ``logits`` (V,) with every token the grammar forbids set to -inf."""
        start = time.perf_counter()
        import llguidance.numpy
        llguidance.numpy.fill_next_token_bitmask(self._matcher, self._words)
        bits = np.unpackbits(self._words.view(np.uint8), bitorder='little')  # (32 * V/32,)
        allowed = bits[:self.vocab_size].view(np.bool_)  # (V,)
        if len(self._stop) and self._matcher.is_accepting():
            allowed = allowed.copy()
            allowed[self._stop] = True  # the template's stop tokens end a finished reply
        out = _masked(logits, allowed)
        self.seconds += time.perf_counter() - start
        return out

    def advance(self, token: int) -> None:
        """Follow the accepted ``token``; raises ``RuntimeError`` if the grammar forbids it."""
        start = time.perf_counter()
        if not self._matcher.consume_token(int(token)):
            raise RuntimeError(f'token {token} breaks the grammar: {self._matcher.get_error()}')
        self.seconds += time.perf_counter() - start

    def done(self) -> bool:
        """Return True when the grammar is complete and allows no more text: end the reply."""
        return self._matcher.is_stopped()

    # ---- a required call's function chosen by likelihood (functions/choice.py) --------------
    choice: Optional[NameChoice] = None  # set by Grammars; the loop runs it before the 1st token

    def narrow(self, matcher: Any) -> None:
        """Go on with ``matcher`` (the grammar of the chosen function) from the start."""
        self._matcher = matcher

    def call_ran(self) -> None:
        """Note that a call ran and its result joined the reply (the function hook says so)."""
        if self._then is not None:
            self._matcher, self._then = self._then, None
        else:
            self._matcher.reset()  # injected text is not model output: free text again


class Grammars:
    """
    Compile ``tool_choice`` / ``response_format`` into constraints for one backend.

    The llguidance tokenizer is built from the backend's vocabulary on first use (a
    transformers tokenizer for ``api='hf'``, llama.cpp's vocabulary for ``'llama_cpp'``).
    """

    def __init__(self, backend: Any):
        self.backend = backend
        self.enabled = True  # False: no grammars (calls found in free text, as before them)
        # 'required': the function is chosen by the likelihood of each name (functions/choice.py)
        self.choose_by_likelihood = True
        self.last: Optional[Constraint] = None  # the latest reply's (benchmarks read it)
        self._tokenizer = None
        self._special: Dict[str, bool] = {}
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        """Return llguidance's tokenizer for this backend (built once)."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self.backend.grammar_tokenizer()
            return self._tokenizer

    def constraint(self, *args, **kwargs) -> Optional[Constraint]:
        """Return the constraint of one reply, or None (see :meth:`build`)."""
        self.last = self.build(*args, **kwargs)
        return self.last

    def build(self, hook: Any, functions: Any, tool_choice: Optional[str],
              response_format: Optional[Dict[str, Any]], stop_ids: Sequence[int],
              prefix: Sequence[int] = ()) -> Optional[Constraint]:
        """
        Return the constraint of one reply, or None when nothing is constrained.

        ``hook`` is the reply's function hook (None without functions or with
        ``tool_choice='none'``); it tells the constraint when a call ran. ``prefix`` (the
        reply prefix's tokens) is followed when the grammar allows it (a call the prefix
        opens is completed validly), else the grammar starts after it.
        """
        records = list(hook.functions) if hook is not None else []
        choice = _check_tool_choice(tool_choice, functions, records)
        if not self.enabled:
            if response_format is not None or choice not in ('auto', 'none'):
                raise ValueError(f'grammars are disabled on this model (grammars.enabled); '
                                 f'tool_choice={tool_choice!r} and response_format need them')
            return None
        engine = not isinstance(self.backend, LogitsBackend)
        if response_format is not None:
            if choice not in ('auto', 'none'):
                raise ValueError(f'tool_choice={tool_choice!r} and response_format cannot both '
                                 'shape one reply; drop one of them')
            if engine:
                raise NotImplementedError(
                    f"api='{self.backend.name}' samples on its engine, where response_format "
                    "is not passed on yet; use api='hf' or 'llama_cpp' for structured output")
            return Constraint(self.tokenizer, self._response_grammar(response_format),
                              self._vocab_size(), stop_ids, prefix=prefix)
        if hook is None or choice == 'none':
            return None
        if engine:
            if choice != 'auto':
                raise NotImplementedError(
                    f"api='{self.backend.name}' samples on its engine, where tool_choice="
                    f"{tool_choice!r} cannot be enforced; use api='hf' or 'llama_cpp'")
            return None  # calls are detected in the engine's text as before
        syntaxes = hook.syntaxes  # the template's own syntax among them
        special = self._special_triggers([m for s in syntaxes for m in s.markers])
        if choice == 'auto':
            free = call_grammar(records, hook.syntax, True, special, syntaxes)
            constraint = Constraint(self.tokenizer, free, self._vocab_size(), stop_ids,
                                    prefix=prefix)
        else:
            chosen = records if choice == 'required' else [
                r for r in records if r.name == choice]
            grammar = call_grammar(chosen, hook.syntax, False, special)
            # after the call's result, text in which no call opens: a forced call is the
            # reply's one call (a small model otherwise chains calls the request never asked)
            constraint = Constraint(self.tokenizer, grammar, self._vocab_size(), stop_ids,
                                    then=prose_grammar(records, syntaxes), prefix=prefix)
            if self.choose_by_likelihood and len(chosen) > 1 and not prefix:
                constraint.choice = self._name_choice(constraint, chosen, hook, special)
        hook.constraint = constraint
        return constraint

    def _name_choice(self, constraint: Constraint, records: Sequence[Any], hook: Any,
                     special: Sequence[str]) -> NameChoice:
        """Return the choice among ``records`` that narrows ``constraint`` to the chosen one."""
        def pick(name: str) -> None:
            one = [r for r in records if r.name == name]
            grammar = call_grammar(one, hook.syntax, False, special)
            constraint.narrow(_matcher(self.tokenizer, grammar))

        return NameChoice(records, hook.template, pick)

    def _vocab_size(self) -> int:
        return int(self.backend.config.vocab_size)

    def _special_triggers(self, triggers: Sequence[str]) -> List[str]:
        """Return the call openings (markers) that are one special token of this vocabulary."""
        out = []
        for trigger in triggers:
            if trigger not in self._special:
                tok = self.tokenizer
                ids = tok.tokenize_str(trigger, parse_special=True)
                self._special[trigger] = len(ids) == 1 and tok.is_special_token(ids[0])
            if self._special[trigger]:
                out.append(trigger)
        return out

    def _response_grammar(self, response_format: Dict[str, Any]) -> str:
        import llguidance
        kind, text = response_grammar(response_format)
        try:
            if kind == 'json_schema':
                grammar = llguidance.LLMatcher.grammar_from_json_schema(
                    json.dumps(text), defaults={'whitespace_flexible': False})
            elif kind == 'regex':
                grammar = llguidance.LLMatcher.grammar_from_regex(text)
            else:
                grammar = llguidance.grammar_from('grammar', text)
        except (ValueError, TypeError) as error:
            raise ValueError(f'bad response_format {kind}: {error}') from None
        error = llguidance.LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error:
            raise ValueError(f'bad response_format {kind}: {error}')
        return grammar


def _masked(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Return a copy of ``logits`` (V,) with -inf wherever ``allowed`` (V',) is False."""
    n = min(len(logits), len(allowed))
    out = np.full_like(logits, -np.inf)
    np.copyto(out[:n], logits[:n], where=allowed[:n])
    return out


def _matcher(tokenizer: Any, grammar: str) -> Any:
    import llguidance
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    if matcher.is_error():
        raise ValueError(f'bad grammar: {matcher.get_error()}')
    return matcher


def _check_tool_choice(tool_choice: Optional[str], functions: Any,
                       records: Sequence[Any]) -> str:
    """Return the effective tool choice; raise ``ValueError`` for one that cannot apply."""
    if isinstance(tool_choice, dict):  # OpenAI's {'type': 'function', 'function': {'name'}}
        tool_choice = (tool_choice.get('function') or {}).get('name')
    if tool_choice is None:
        return 'auto'
    if not isinstance(tool_choice, str) or not tool_choice:
        raise ValueError(f"tool_choice must be 'auto', 'required', 'none' or a function's "
                         f'name, got {tool_choice!r}')
    if tool_choice in ('auto', 'none'):
        return tool_choice
    names = [r.name for r in records]
    if not functions:
        raise ValueError(f'tool_choice={tool_choice!r} needs functions= (none were given)')
    if tool_choice == 'required' or tool_choice in names:
        return tool_choice
    raise ValueError(f'tool_choice={tool_choice!r} is not one of the functions given '
                     f"({', '.join(names)}) nor 'auto', 'required' or 'none'")

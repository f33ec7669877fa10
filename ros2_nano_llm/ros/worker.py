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
The node's chat and the work it hands to the model's worker thread (no rclpy here).

``ChatSession`` is the library's chat session (``chat.session``: the turn, its undo, the
room math, the turn ids) with the node's newest camera frame for a prompt. ``ChatWorker``
hands the chat changes (reset, a new system prompt) and the prompts to ``NanoLLM.submit()``,
the only queue, as they arrive; ``BusyPolicy`` decides at submission whether a prompt waits,
interrupts the reply or is refused. ROS callbacks only submit and return, and each piece of
a reply goes to a sink (the node, which publishes) from the model's thread as it decodes.
"""

from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

import numpy as np

from .params import NodeConfig
from .persistence import open_session
from ..chat import session
from ..chat.session import PromptRejected, Turn, TurnIds

INACTIVE = 'the node is not active (inactive: activate first)'

__all__ = ['BusyPolicy', 'ChatSession', 'ChatWorker', 'LatestFrame', 'Outcome', 'Prompt',
           'PromptRejected', 'TurnIds']


@dataclass
class Outcome:
    """How a prompt ended, for its listener: the reply, or why there was none."""

    turn_id: int = 0
    text: str = ''
    stop_reason: str = 'error'   # as StreamingResponse.stop_reason
    calls: List[Any] = field(default_factory=list)  # functions.calls.FunctionCall records
    stats: Dict[str, float] = field(default_factory=dict)
    error: str = ''              # why the prompt was not answered ('' when it was)


class Listener(Protocol):
    """Who asked one prompt (a ~/generate goal): told of its pieces and of its end."""

    def piece(self, index: int, text: str) -> None:
        """Take one new piece of this prompt's reply."""

    def finished(self, outcome: Outcome) -> None:
        """Take the end of this prompt (called exactly once, whatever happened)."""


@dataclass(eq=False)
class Prompt:
    """A user prompt as it arrived, with its own options (defaults: the parameters)."""

    text: str
    received: float  # time.monotonic() at arrival
    tool_choice: str = ''     # '' uses the tool_choice parameter
    max_new_tokens: int = 0   # 0 uses the max_new_tokens parameter
    image: Optional[np.ndarray] = None  # RGB image for this prompt (else a fresh frame)
    reset: bool = False       # clear the chat (system prompt kept) before this prompt
    listener: Optional[Listener] = None

    def notify(self, outcome: Outcome) -> None:
        """Tell the listener (once) how the prompt ended."""
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.finished(outcome)


@dataclass
class Frame:
    """A camera frame held for the next prompt."""

    seq: int
    image: np.ndarray
    received: float


class LatestFrame:
    """The newest camera frame: each frame joins at most one prompt, and only while fresh."""

    def __init__(self):
        self._lock = threading.Lock()
        self._frame: Optional[Frame] = None
        self._seq = 0

    def put(self, image: np.ndarray, received: float) -> None:
        """Keep ``image`` (an RGB array) as the newest frame, replacing the older one."""
        with self._lock:
            self._seq += 1
            self._frame = Frame(self._seq, image, received)

    def peek(self, max_age: float, now: float) -> Optional[Frame]:
        """Return the newest frame if it is at most ``max_age`` seconds old, else None."""
        with self._lock:
            frame = self._frame
        if frame is None or max_age <= 0.0 or now - frame.received > max_age:
            return None
        return frame

    def consume(self, frame: Frame) -> None:
        """Forget ``frame`` once it joined the chat (a newer frame stays)."""
        with self._lock:
            if self._frame is not None and self._frame.seq == frame.seq:
                self._frame = None

    def clear(self) -> None:
        """Forget any held frame."""
        with self._lock:
            self._frame = None


class Sink(Protocol):
    """Where a reply goes (the node publishes it)."""

    def piece(self, turn_id: int, index: int, text: str) -> None:
        """Take one new piece of reply text."""

    def finished(self, turn_id: int, pieces: int, text: str,
                 stats: Optional[Dict[str, float]]) -> None:
        """Take the end of a turn: the whole (maybe partial) text and the model's stats."""


class ChatSession(session.ChatSession):
    """The node's chat session: the library's, with the newest camera frame for a prompt."""

    def __init__(self, model: Any, history: Any, functions: Any = None,
                 turn_ids: Optional[TurnIds] = None, frames: Optional[LatestFrame] = None):
        super().__init__(model, history, functions, turn_ids)
        self.frames = frames if frames is not None else LatestFrame()

    @classmethod
    def load(cls, config: NodeConfig, frames: LatestFrame, functions: Any = None,
             turn_ids: Optional[TurnIds] = None) -> 'ChatSession':
        """Load the model and build an empty chat as ``config`` says (blocks: the load thread)."""
        from ..llm import NanoLLM
        model = NanoLLM.from_pretrained(**config.load_options())
        chat = cls.build(model, config, functions, turn_ids)
        chat.frames = frames
        return chat

    def encoder_side(self) -> int:
        """Return the largest side (px) the model's image encoder works at; 0 when unknown."""
        return self.model.backend.image_side()

    def start_turn(self, prompt: Prompt, config: NodeConfig) -> Turn:
        """Start ``prompt``'s turn, with a fresh camera frame when it brings no image."""
        frame, image = None, prompt.image
        if image is None and self.model.has_vision:
            frame = self.frames.peek(config.max_image_age, time.monotonic())
            image = frame.image if frame is not None else None
        turn = self.start(prompt.text, config, image, prompt.max_new_tokens, prompt.tool_choice)
        if frame is not None:
            self.frames.consume(frame)
        return turn


@dataclass(frozen=True)
class BusyPolicy:
    """
    What a prompt that arrives while the chat is busy gets (``busy_policy``, ``max_queue``).

    ``queue``: it waits, at most ``max_queue`` of them; ``interrupt``: the reply stops and
    waiting prompts are dropped; ``drop``: it is refused. Applied once, at submission.
    """

    name: str = 'queue'
    max_queue: int = 4

    @classmethod
    def of(cls, config: NodeConfig) -> 'BusyPolicy':
        """Return the policy the parameters set."""
        return cls(config.busy_policy, int(config.max_queue))

    def refusal(self, busy: bool, waiting: int) -> str:
        """Return why a prompt is not taken now (``busy``, ``waiting`` prompts), or ''."""
        if not (busy or waiting):
            return ''
        if self.name == 'drop':
            return "busy with a reply and busy_policy is 'drop'"
        if self.name == 'queue' and waiting >= self.max_queue:
            return f'{waiting} prompts already wait (max_queue)'
        return ''

    @property
    def interrupts(self) -> bool:
        """Return True when a new prompt stops the reply and the waiting prompts."""
        return self.name == 'interrupt'


class LoadTimeout(Exception):
    """The model did not load within ``load_timeout`` (it is freed when the load ends)."""


class LoadAbandoned(Exception):
    """The process began to end while the model loaded: configure gave the load up."""


ABANDON_POLL_S = 0.05  # how often a configure waiting on the load looks at ``abandon``


def load_chat(config: NodeConfig, pool: Executor, frames: LatestFrame, functions: Any,
              turn_ids: TurnIds, chat_file: Any,
              abandon: Optional[threading.Event] = None) -> ChatSession:
    """
    Load the model and build the chat (restored from ``chat_file``) on ``pool``.

    Waits at most ``config.load_timeout`` (raises LoadTimeout), or until ``abandon`` is set
    (raises LoadAbandoned: a load, a GGUF conversion say, cannot be interrupted, and the
    process's end must not wait for it); a load's error is raised.
    """
    future = pool.submit(open_session, lambda: ChatSession.load(
        config, frames, functions, turn_ids), chat_file)
    deadline = time.monotonic() + config.load_timeout
    while not future.done():
        left = deadline - time.monotonic()
        if abandon is not None and abandon.is_set():
            future.add_done_callback(_close_late_session)
            raise LoadAbandoned('the node is shutting down; the model load is left to end '
                                'with the process')
        if left <= 0.0:
            future.add_done_callback(_close_late_session)
            raise LoadTimeout(f'the model did not load within load_timeout='
                              f'{config.load_timeout:g} s')
        futures_wait([future], timeout=min(left, ABANDON_POLL_S))
    if future.cancelled():  # the pool shut down before the load began: the node is ending
        raise LoadAbandoned('the node is shutting down; the model load did not begin')
    return future.result()


def _close_late_session(future: Future) -> None:
    # a load that finished after configure gave up on it: free the model at once
    if not future.cancelled() and future.exception() is None:
        future.result().close()


@dataclass(eq=False)
class _Turn:
    """The reply being generated for one prompt: the session's turn and its publishing."""

    prompt: Prompt
    turn: Turn
    pieces: int = 0
    failure: Optional[BaseException] = None  # the sink or the listener failed

    @property
    def reply(self) -> Any:
        """Return the turn's StreamingResponse."""
        return self.turn.reply

    @property
    def turn_id(self) -> int:
        """Return the turn's id."""
        return self.turn.turn_id


class ChatWorker:
    """
    The node's chat work, handed to the model's worker thread (no thread or queue of its own).

    Each prompt the busy policy takes and each call (``call``/``post``) goes to
    ``model.submit()`` at once, so they run in arrival order, never during a reply::

        submit(prompt) -> BusyPolicy -> model.submit(_answer)
        _answer: start_turn -> model.generate(), reply.subscribe(_piece, _ended);
                 the reply runs right after it on the same thread (NanoLLM's rule)
        _piece:  each piece to the sink (published) as it decodes
        _ended:  the reply joins the chat (or the prompt is taken back), the sink and the
                 prompt's listener are told

    ``waiting`` only counts (and lets ``cancel`` drop) the prompts taken but not started:
    a dropped one is told at once and its step does nothing when it runs. A reply holds the
    chat until it ends or is stopped; a robot action it waits for ends at its own timeout or
    at the node's ``~/stop``.
    """

    def __init__(self, session: ChatSession, sink: Sink, config: Callable[[], NodeConfig],
                 logger: Any):
        self.session = session
        self.sink = sink
        self.logger = logger
        self.last_setup_s = float('nan')  # prompt arrival -> generation started, last turn
        self._config = config
        self._cond = threading.Condition()
        self._waiting: List[Prompt] = []   # taken, their step not run yet
        self._accepting = False
        self._closing = False
        self._current: Optional[Prompt] = None  # the prompt being answered, for cancel()
        self._turn: Optional[_Turn] = None      # ... its turn once started, for stop()
        self._stop_turn = False                 # stop the reply as soon as it starts
        self._generating = False                # ... and its reply is not complete yet
        self._open_entries = 0  # history entries of the turn in progress (history.lock)

    # ---- state ------------------------------------------------------------------------
    @property
    def turn_id(self) -> int:
        """Return the id of the newest turn (the session keeps the ids)."""
        return self.session.turn_id

    @property
    def busy(self) -> bool:
        """Return True while a prompt is being answered (its reply is being generated)."""
        return self._generating

    @property
    def queue_length(self) -> int:
        """Return how many prompts wait for the current reply to end."""
        return len(self._waiting)

    def open_turn_entries(self) -> int:
        """
        Return how many newest history entries belong to the turn in progress (0: none).

        Read it under ``history.lock``: it changes with the entries, under that lock, when
        a turn starts and when it ends, so a reader never sees half a turn.
        """
        return self._open_entries

    # ---- calls ------------------------------------------------------------------------
    def submit_call(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the model's worker thread after the work before it; return its Future."""
        with self._cond:
            if not self._closing:
                try:
                    return self.session.model.submit(fn)
                except RuntimeError:  # the model is closed
                    pass
        future: Future = Future()
        future.set_exception(RuntimeError('the worker is shut down'))
        return future

    def call(self, fn: Callable[[], Any], timeout: float) -> Any:
        """Run ``fn`` on the model's worker thread and return its result (within ``timeout``)."""
        return self.submit_call(fn).result(timeout=timeout)

    def post(self, fn: Callable[[], Any], what: str) -> None:
        """Run ``fn`` on the model's worker thread later; a failure is logged as ``what``."""
        def report(future: Future) -> None:
            if future.exception() is not None:
                self.logger.error(f'{what} failed: {future.exception()}')
        self.submit_call(fn).add_done_callback(report)

    # ---- prompts ----------------------------------------------------------------------
    def submit(self, prompt: Prompt) -> Tuple[bool, str]:
        """
        Take a prompt as the busy policy says and hand it to the model's queue.

        Returns ``(taken, note)``: the note says what happened to other work, or why the
        prompt was not taken.
        """
        policy = BusyPolicy.of(self._config())
        with self._cond:
            refusal = self._refusal(policy)
            if refusal:
                return False, refusal
            note = ''
            if self._generating or self._waiting:
                if policy.interrupts:
                    dropped = self._drop_waiting()
                    self._stop_current()
                    note = f'interrupted turn {self.turn_id}' + (
                        f', dropped {dropped} waiting prompts' if dropped else '')
                else:
                    note = f'queued, {len(self._waiting) + 1} waiting'
            try:
                self.session.model.submit(lambda: self._answer(prompt)).add_done_callback(
                    self._step_failed)
            except RuntimeError as error:  # the model is closed: nothing can run any more
                return False, f'the model takes no more work: {error}'
            self._waiting.append(prompt)
            return True, note

    def apply(self, names: List[str], new: NodeConfig, saved: Callable[[], None]) -> None:
        """Apply the changed live settings ``names`` to the chat, in order on its thread."""
        session = self.session
        if 'system_prompt' in names:
            self.stop()
            self.post(lambda: session.set_system_prompt(new.system_prompt),
                      'setting the system prompt')
            self.post(saved, 'saving the chat')
            self.logger.info('system prompt changed: the chat was reset')
        if 'wrap_tokens' in names or 'system_prompt' in names:
            self.post(lambda: session.set_wrap_tokens(new.wrap_tokens), 'setting wrap_tokens')

    def refusal(self) -> str:
        """Return why a prompt submitted now would not be taken (busy policy), or ''."""
        policy = BusyPolicy.of(self._config())
        with self._cond:
            return self._refusal(policy)

    def _refusal(self, policy: BusyPolicy) -> str:
        # under self._cond
        if not self._accepting or self._closing:
            return INACTIVE
        return policy.refusal(self._generating, len(self._waiting))

    def cancel(self, prompt: Prompt) -> bool:
        """Stop ``prompt``'s reply (the partial reply is kept) or drop it if it waits."""
        with self._cond:
            if prompt in self._waiting:
                self._waiting.remove(prompt)
                prompt.notify(Outcome(stop_reason='stopped', error='cancelled while waiting'))
                return True
            if self._current is prompt:
                self._stop_current()
                return True
            return False

    def stop(self) -> Tuple[bool, int]:
        """
        Stop the reply being generated and drop waiting prompts.

        Returns ``(a reply was running, prompts dropped)``.
        """
        with self._cond:
            dropped = self._drop_waiting()
            running = self._generating
            self._stop_current()
            return running, dropped

    def pause(self) -> None:
        """Stop taking prompts, stop the reply and drop waiting prompts (deactivate)."""
        with self._cond:
            self._accepting = False
        self.stop()

    def resume(self) -> None:
        """Take prompts again (activate)."""
        with self._cond:
            self._accepting = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until no reply is running; return True if idle."""
        with self._cond:
            return self._cond.wait_for(lambda: self._current is None, timeout=timeout)

    def close(self, timeout: float) -> bool:
        """Stop everything; return True if the work in progress ended within ``timeout``."""
        with self._cond:
            self._closing = True
            self._accepting = False
        self.stop()
        return self.wait_idle(timeout)

    def _drop_waiting(self) -> int:
        # under self._cond: their steps, still on the model's queue, will do nothing
        dropped, self._waiting = self._waiting, []
        for prompt in dropped:
            prompt.notify(Outcome(stop_reason='stopped', error='dropped while waiting'))
        return len(dropped)

    def _stop_current(self) -> None:
        # under self._cond; a reply still in prefill is stopped as soon as it starts
        if self._current is not None:
            self._stop_turn = True
            if self._turn is not None:
                self._turn.reply.stop()

    # ---- on the model's worker thread -------------------------------------------------
    def _step_failed(self, future: Future) -> None:
        # _answer catches what a turn raises: anything else is a bug, said here
        if future.exception() is not None:
            self.logger.error(f'chat step failed: {future.exception()!r}')

    def _answer(self, prompt: Prompt) -> None:
        # the start of one reply; it runs right after this, on this thread, and _ended ends it
        with self._cond:
            if prompt not in self._waiting:
                return  # dropped or cancelled while it waited (already told)
            self._waiting.remove(prompt)
            self._current, self._stop_turn = prompt, False
            self._generating = True
        try:
            self._begin(prompt)
        except PromptRejected as error:
            self.logger.warning(f'prompt rejected, chat unchanged: {error}')
            self._prompt_done(prompt, Outcome(error=f'prompt rejected: {error}'))
        except Exception as error:  # noqa: BLE001 - the chat must outlive a bad turn
            self.logger.error(f'reply failed, chat unchanged: {type(error).__name__}: {error}')
            self._prompt_done(prompt, Outcome(turn_id=self.turn_id, error=f'reply failed: '
                                              f'{type(error).__name__}: {error}'))

    def _begin(self, prompt: Prompt) -> None:
        session = self.session
        if prompt.reset:
            session.reset()
        with session.history.lock:  # the entries and their count change together
            turn = session.start_turn(prompt, self._config())
            self._open_entries = turn.added
        self.last_setup_s = time.monotonic() - prompt.received
        with self._cond:
            self._turn = _Turn(prompt, turn)
            if self._stop_turn:
                turn.reply.stop()
        turn.reply.subscribe(self._piece, self._ended)

    def _piece(self, text: str) -> None:
        turn = self._turn
        if turn.failure is not None:
            return
        try:
            self.sink.piece(turn.turn_id, turn.pieces, text)
            if turn.prompt.listener is not None:
                turn.prompt.listener.piece(turn.pieces, text)
            turn.pieces += 1
        except Exception as error:  # noqa: BLE001 - ends this turn, not the chat
            turn.failure = error
            turn.reply.stop()

    def _ended(self, reply: Any) -> None:
        turn = self._turn
        with self._cond:
            # the reply is complete: a prompt arriving from now on waits for no generation
            self._generating = False
        try:
            outcome = self._finish(turn)
        except Exception as error:  # noqa: BLE001 - the chat must outlive a bad turn
            outcome = Outcome(turn.turn_id, error=f'ending turn {turn.turn_id} failed: '
                                                  f'{type(error).__name__}: {error}')
            self.logger.error(outcome.error)
        self._prompt_done(turn.prompt, outcome)

    def _finish(self, turn: _Turn) -> Outcome:
        reply, session = turn.reply, self.session
        error = reply.error or turn.failure
        # the chat first: what follows publishes, and a failure there must not lose the turn
        with session.history.lock:
            try:
                session.finish(turn.turn, failed=error is not None)
            finally:
                self._open_entries = 0
        if error is not None:
            self.logger.error(f'reply failed, chat unchanged: {type(error).__name__}: {error}')
        stats = reply.record.figures.as_dict() if error is None else None  # this reply's own
        self.sink.finished(turn.turn_id, turn.pieces, reply.text if error is None else '', stats)
        if error is not None:
            return Outcome(turn.turn_id, error=f'reply failed: {type(error).__name__}: {error}')
        # the calls that ran (each was reported on ~/output/calls as it happened)
        return Outcome(turn.turn_id, reply.text, reply.stop_reason or 'eos',
                       [c for c in reply.calls if c.ran], stats or {})

    def _prompt_done(self, prompt: Prompt, outcome: Outcome) -> None:
        # the prompt is answered (or refused): tell its listener, then take the next work
        try:
            prompt.notify(outcome)
        except Exception as error:  # noqa: BLE001 - a listener's failure must not stall the chat
            self.logger.error(f'telling the end of turn {outcome.turn_id} failed: '
                              f'{type(error).__name__}: {error}')
        finally:
            with self._cond:
                self._generating = False
                self._turn, self._current = None, None
                self._cond.notify_all()

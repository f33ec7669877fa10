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
The node's chat and the work it does on the model's worker thread (no rclpy here).

``ChatSession`` is the library's chat session (``chat.session``: the turn, its undo, the
room math, the turn ids) with the node's newest camera frame for a prompt. ``ChatWorker``
runs, in order and on the model's one worker thread, the chat changes (reset, a new system
prompt) and the replies to prompts: ROS callbacks only queue work and return, and each
piece of a reply goes to a sink (the node, which publishes) from that thread as it decodes.
"""

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Tuple

import numpy as np

from .params import NodeConfig
from ..chat import session
from ..chat.session import PromptRejected, Turn, TurnIds
from ..futures import run_into

__all__ = ['ChatSession', 'ChatWorker', 'LatestFrame', 'Outcome', 'Prompt', 'PromptRejected',
           'TurnIds']


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
    The node's chat work, run in order on the model's worker thread (no thread of its own).

    Calls (``call``/``post``) and prompts wait here and go to the model's worker one at a
    time, calls before waiting prompts and never during a reply::

        submit()/submit_call() -> _schedule_step() -> model.submit(_step)
        _step: a call runs, or a prompt's turn starts (start_turn -> model.generate(), and
               reply.subscribe(_piece, _ended)); the reply runs next on the same thread
        _piece: each piece to the sink (published) as it decodes
        _ended: the reply joins the chat, the sink and the prompt's listener are told,
                and the next step is scheduled

    Prompts arriving during a reply follow the busy policy: ``queue`` (at most
    ``max_queue`` waiting), ``interrupt`` (stop the reply, drop waiting prompts) or
    ``drop``. A reply holds the chat until it ends or is stopped; a robot action it waits
    for ends at its own timeout or at the node's ``~/stop``.
    """

    def __init__(self, session: ChatSession, sink: Sink, config: Callable[[], NodeConfig],
                 logger: Any):
        self.session = session
        self.sink = sink
        self.logger = logger
        self.last_setup_s = float('nan')  # prompt arrival -> generation started, last turn
        self._config = config
        self._cond = threading.Condition()
        self._calls: Deque[Tuple[Callable[[], Any], Future]] = deque()
        self._prompts: Deque[Prompt] = deque()
        self._accepting = False
        self._closing = False
        self._scheduled = False     # a step or a reply of ours is on the model's worker
        self._busy = False          # a prompt is being answered (until its turn is published)
        self._generating = False    # ... and its reply is not complete yet
        self._current: Optional[Prompt] = None  # the prompt being answered, for cancel()
        self._reply: Any = None                 # ... and its reply, once started, for stop()
        self._stop_turn = False                 # stop the reply as soon as it starts
        self._turn: Optional[_Turn] = None      # its bookkeeping (model's worker thread only)

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
        return len(self._prompts)

    # ---- calls ------------------------------------------------------------------------
    def submit_call(self, fn: Callable[[], Any]) -> Future:
        """Queue ``fn`` to run on the model's worker thread; return its Future."""
        future: Future = Future()
        with self._cond:
            if self._closing:
                future.set_exception(RuntimeError('the worker is shut down'))
                return future
            self._calls.append((fn, future))
            self._schedule_step()
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
        Queue a prompt as the busy policy says.

        Returns ``(taken, note)``: the note says what happened to other work, or why the
        prompt was not taken.
        """
        config = self._config()
        with self._cond:
            refusal = self._refusal(config)
            if refusal:
                return False, refusal
            note = ''
            if self._generating or self._prompts:
                if config.busy_policy == 'interrupt':
                    dropped = self._clear_prompts()
                    self._stop_current()
                    note = f'interrupted turn {self.turn_id}' + (
                        f', dropped {dropped} waiting prompts' if dropped else '')
                else:
                    note = f'queued, {len(self._prompts) + 1} waiting'
            self._prompts.append(prompt)
            self._schedule_step()
            return True, note

    def refusal(self) -> str:
        """Return why a prompt submitted now would not be taken (busy policy), or ''."""
        config = self._config()
        with self._cond:
            return self._refusal(config)

    def _refusal(self, config: NodeConfig) -> str:
        # under self._cond
        if not self._accepting or self._closing:
            return 'the node is not active'
        if self._generating or self._prompts:
            if config.busy_policy == 'drop':
                return "busy with a reply and busy_policy is 'drop'"
            if config.busy_policy == 'queue' and len(self._prompts) >= config.max_queue:
                return f'{len(self._prompts)} prompts already wait (max_queue)'
        return ''

    def cancel(self, prompt: Prompt) -> bool:
        """Stop ``prompt``'s reply (the partial reply is kept) or drop it if it waits."""
        with self._cond:
            if prompt in self._prompts:
                self._prompts.remove(prompt)
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
            dropped = self._clear_prompts()
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
            self._schedule_step()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until no reply is running; return True if idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout=timeout)

    def close(self, timeout: float) -> bool:
        """Stop everything; return True if the work in progress ended within ``timeout``."""
        with self._cond:
            self._closing = True
            self._accepting = False
            self._clear_prompts()
            self._stop_current()
            self._fail_calls()
            return self._cond.wait_for(lambda: not self._scheduled, timeout=timeout)

    def _clear_prompts(self) -> int:
        # under self._cond
        dropped = list(self._prompts)
        self._prompts.clear()
        for prompt in dropped:
            prompt.notify(Outcome(stop_reason='stopped', error='dropped while waiting'))
        return len(dropped)

    def _fail_calls(self) -> None:
        # under self._cond
        for _, future in self._calls:
            future.set_exception(RuntimeError('the worker is shut down'))
        self._calls.clear()

    def _stop_current(self) -> None:
        # under self._cond; a reply still in prefill is stopped as soon as it starts
        if self._busy:
            self._stop_turn = True
            if self._reply is not None:
                self._reply.stop()

    # ---- on the model's worker thread -------------------------------------------------
    def _schedule_step(self) -> None:
        # under self._cond: hand the next work to the model's worker unless ours is there
        if self._scheduled or not (self._calls or (self._accepting and self._prompts)):
            return
        try:
            future = self.session.model.submit(self._step)
        except RuntimeError as error:  # the model is closed: nothing can run any more
            self.logger.error(f'the model takes no more work: {error}')
            self._clear_prompts()
            self._fail_calls()
            return
        self._scheduled = True
        future.add_done_callback(self._step_failed)

    def _step_failed(self, future: Future) -> None:
        # _step catches what a call or a turn raises: anything else is a bug, said here
        if future.exception() is not None:
            self.logger.error(f'chat step failed: {future.exception()!r}')

    def _step(self) -> None:
        # one call, or the start of one reply (whose end, in _ended, schedules the next step)
        with self._cond:
            if self._calls:
                fn, future = self._calls.popleft()
                prompt = None
            elif self._accepting and self._prompts:
                prompt = self._current = self._prompts.popleft()
                self._busy = self._generating = True
                self._stop_turn, self._reply = False, None
            else:
                self._step_done()
                return
        if prompt is None:
            run_into(future, fn)
            with self._cond:
                self._step_done()
            return
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
        turn = session.start_turn(prompt, self._config())
        self.last_setup_s = time.monotonic() - prompt.received
        with self._cond:
            self._reply = reply = turn.reply
            if self._stop_turn:
                reply.stop()
        # the reply runs on this thread right after this step: nothing else is queued
        self._turn = _Turn(prompt, turn)
        reply.subscribe(self._piece, self._ended)

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
        self._turn = None
        self._prompt_done(turn.prompt, outcome)

    def _finish(self, turn: _Turn) -> Outcome:
        reply, session = turn.reply, self.session
        error = reply.error or turn.failure
        # the chat first: what follows publishes, and a failure there must not lose the turn
        session.finish(turn.turn, failed=error is not None)
        if error is not None:
            self.logger.error(f'reply failed, chat unchanged: {type(error).__name__}: {error}')
        stats = dict(session.model.stats) if error is None else None
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
                self._busy = self._generating = False
                self._reply, self._current = None, None
                self._step_done()

    def _step_done(self) -> None:
        # under self._cond: our work on the model's worker is done; schedule the next, if any
        self._scheduled = False
        self._cond.notify_all()
        if not self._closing:
            self._schedule_step()

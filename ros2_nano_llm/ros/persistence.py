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
The node's chat on disk (parameter ``history_file``): loaded at configure, saved on change.

``ChatFile.restore`` loads the file into the new chat at ``configure``; a bad file is moved
aside (``chat.storage.quarantine``) and the node starts with a new chat and says so.
``ChatFile.changed`` is called after every change of the chat (a reply ended, a reset, a
new system prompt): it takes a snapshot at once (a copy of token lists, well under a
millisecond for a 2,000-token chat) and hands it to a writer job on the node's thread pool
(``concurrent.futures``), which encodes it and replaces the file (fsync, rename). Only the
newest snapshot waits and at most one job writes, so a slow disk never queues up writes.
No rclpy here: the node passes its logger and its pool.

What "saved" means (issue 21 item 8): ``ChatFile.save`` hands the snapshot over and waits
until a write holding it is on disk (fsync'd and renamed), so the node publishes a turn's
final reply on ``~/output/reply``, and a goal's result, only once the chat that holds it is
durable: a client that saw a reply finds it in the file after ``kill -9``. If the write
fails (a full disk) the reply is still published, and ``/diagnostics`` says the chat is not
saved. Turn ids are never used twice, even across ``kill -9``: the ids up to one past the
saved ``turn_id`` count as handed out (the next turn may be streaming when the process dies),
so a restored chat goes on after that one; a turn whose id would pass it (a new file, a
failed write) first writes the file again with ``turn_ids_reserved`` set to its own id
(``ReservedTurnIds``).

Warm restart (issue 20): the model's KV cache of the chat is saved beside the file
(``models.cache_file``, ``<history_file>.kv``, at most ``kv_state_max_bytes``; 0 turns it
off). It is loaded at configure right after the chat, only when it matches the chat's
tokens, the model file and the backend, else it is ignored and the log says why. It is
saved by a job on the node's pool once the chat has not changed for ``KV_IDLE_S`` seconds,
at deactivate (``save_state_soon``), and at cleanup and shutdown (``close``): the snapshot
is a memory copy on the model's worker between replies, the write is on the pool, so no
reply waits for the disk. The chat file stays the source of truth; losing the state file
only costs the first reply's prefill.
"""

from concurrent.futures import Executor, ThreadPoolExecutor
import os
import threading
import time
from typing import Any, Callable, Dict, Optional

from ..chat import storage
from ..chat.session import TurnIds
from ..models import cache_file

TURN_ID_MAX = (1 << 32) - 1   # turn ids go out as uint32 (StreamToken, the Generate result)
TURN_ID_ROOM = 1 << 20        # a loaded chat must leave this many turn ids to go on with
KV_IDLE_S = 2.0               # the KV state is saved once the chat is this long unchanged
KV_SAVE_TIMEOUT_S = 30.0      # bound on one KV snapshot (it waits for a reply to end)
WRITE_WAIT_S = 10.0           # bound on a turn's wait for its id's reservation on disk


class ReservedTurnIds(TurnIds):
    """
    The node's turn ids: each one handed out is reserved in the chat file first.

    ``attach`` a configured chat's file (or None): each new id is then passed to its
    ``reserve`` before it is used, which returns at once while the id is reserved on disk.
    """

    def __init__(self):
        super().__init__()
        self.reserve: Optional[Callable[[int], None]] = None

    def attach(self, chat_file: Optional['ChatFile']) -> None:
        """Reserve ids in ``chat_file`` from now on (None: in no file), after its own ids."""
        if chat_file is not None:
            self.skip_past(chat_file.reserved)
        self.reserve = chat_file.reserve if chat_file is not None else None

    def __next__(self) -> int:
        """Return the next id, reserved on disk first when a chat file is open."""
        turn_id = super().__next__()
        reserve = self.reserve
        if reserve is not None:
            reserve(turn_id)
        return turn_id


def _reserved_in(extra: Dict[str, Any]) -> int:
    # the newest turn id a saved chat's process may have handed out
    return max(extra.get('turn_id', 0) + 1, extra.get('turn_ids_reserved', 0))


def check_extra(extra: Dict[str, Any]) -> str:
    """Return why the node's data in a chat file is out of its range, or '' when it is fine."""
    high = TURN_ID_MAX - TURN_ID_ROOM
    for key in ('turn_id', 'turn_ids_reserved'):
        value = extra.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
            return (f'{key} {value!r} is not a turn id in 0..{high} (turn ids go out as uint32 '
                    f'and the chat must leave room for {TURN_ID_ROOM} more turns)')
    return ''


class ChatFile:
    """One chat's file: restore it, then write the newest snapshot after each change."""

    def __init__(self, path: str, logger: Any, pool: Optional[Executor] = None,
                 kv_max_bytes: int = cache_file.DEFAULT_MAX_BYTES):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.logger = logger
        self.turn_id = 0                  # the last turn id saved in the file
        self.status = 'not loaded'        # one line for /diagnostics
        self.kv_status = 'off' if kv_max_bytes <= 0 else 'not saved yet'
        self._bad_file = ''               # set when the file was bad and moved aside
        self._write_error = ''            # set while the last write failed
        self.last_snapshot_ms = float('nan')  # time the caller's thread spent, last save
        self.last_write_ms = float('nan')     # time the writer spent (encode, fsync, rename)
        self.writes = 0
        self._cond = threading.Condition()
        self._pending: Optional[storage.Snapshot] = None
        self._last: Optional[storage.Snapshot] = None  # the newest snapshot handed over
        self._handed = 0        # snapshots handed over so far (each one's ticket)
        self._done = 0          # the newest ticket the writer ended (written or failed)
        self._durable = 0       # ... and the newest it wrote to disk
        self._pending_ticket = 0
        self._reserved = 0          # turn ids up to this one may be handed out
        self._reserved_on_disk = 0  # ... and the file says so
        self._writing = False   # a writer job is queued or running on the pool
        self._closing = False
        self._history: Any = None  # the chat, once restored (for its KV state)
        self._kv_max_bytes = kv_max_bytes
        self._kv_due: Optional[float] = None  # time.monotonic() the KV state is due
        self._kv_running = False
        self._kv_dirty = False  # the chat changed since the state was loaded or saved
        self._kv_warned = ''  # the last reason logged for a state not saved (said once)
        # the node's pool; alone (tests, benchmarks) the file has a one-thread pool of its own
        self._own_pool = pool is None
        self._pool = pool if pool is not None else ThreadPoolExecutor(
            2, thread_name_prefix='nano_llm.history_file')

    @property
    def kv_path(self) -> str:
        """Return where the chat's KV state is kept (``<history_file>.kv``)."""
        return cache_file.state_path(self.path)

    def restore(self, history: Any) -> None:
        """
        Load the file into ``history`` (a new chat); set ``turn_id`` to the saved one.

        A missing file means a new chat; a bad one is moved aside with the reason logged.
        Then the KV state beside it is loaded if it matches (else the log says why not).
        Raises OSError when the file cannot be read, or is bad and cannot be moved aside (it
        is then never overwritten).
        """
        try:
            restored = storage.restore(history, self.path, check_extra)
        except OSError as error:
            raise OSError(f"history_file '{self.path}' cannot be used ({error}); fix the path "
                          'or the file, or set history_file to another one') from error
        self.turn_id = restored.extra.get('turn_id', 0)
        reserved = _reserved_in(restored.extra) if restored.loaded else 0
        if restored.moved_to:
            self._bad_file = f'history_file was bad, new chat: {restored.note}'
            self.status = self._bad_file
            self.logger.error(restored.note)
        else:
            self.status = restored.note
            self.logger.info(restored.note + (
                f', last turn {self.turn_id}' if restored.loaded else ''))
        with self._cond:
            self._history = history
            self._last = storage.snapshot(history, dict(restored.extra))
            self._reserved = self._reserved_on_disk = reserved
        if self._kv_max_bytes > 0:
            self._load_state(history)

    @property
    def warning(self) -> str:
        """Return what an operator should know ('' when all is well): bad file, failed write."""
        return self._write_error or self._bad_file

    def changed(self, history: Any, turn_id: int) -> int:
        """
        Snapshot the chat now (caller's thread) and have the writer save it soon.

        Returns the snapshot's ticket for ``wait_saved`` (0 when there is nothing to wait
        for: the chat cannot be saved, or the file is closed).
        """
        start = time.perf_counter()
        # under the chat's lock until handed over, so snapshots reach the writer in the
        # order of the changes they hold (the writer never takes the chat's lock)
        with history.lock:
            with self._cond:
                # the next turn may stream before it is saved: its id is reserved with this one
                extra = self._extra(int(turn_id), int(turn_id) + 1)
            try:
                snap = storage.snapshot(history, extra)
            except ValueError as error:
                self._failed(f'chat not saved: {error}')
                return 0
            with self._cond:
                ticket = self._hand_over(snap)
                self._kv_dirty = True
        self.last_snapshot_ms = 1000.0 * (time.perf_counter() - start)
        return ticket

    def save(self, history: Any, turn_id: int, timeout: float) -> bool:
        """Save the chat now and wait until it is on disk; return True once it is durable."""
        return self.wait_saved(self.changed(history, turn_id), timeout)

    def wait_saved(self, ticket: int, timeout: float) -> bool:
        """Wait until snapshot ``ticket`` (or a newer one) is written; True if it is on disk."""
        if ticket <= 0:
            return False
        with self._cond:
            self._cond.wait_for(lambda: self._done >= ticket, timeout)
            return self._durable >= ticket

    def flush(self, timeout: float) -> bool:
        """Wait until every snapshot taken so far is on disk; return False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._writing,
                                       timeout)

    def save_state_soon(self) -> None:
        """Save the KV state now if the chat changed since it was saved (deactivate; the pool)."""
        with self._cond:
            self._schedule_state(0.0)

    def close(self, timeout: float) -> bool:
        """
        Write what is pending and the KV state, then take no more changes.

        Returns False if that did not end within ``timeout``; the model must stay loaded
        until this returns (the KV state is copied from it).
        """
        with self._cond:
            self._closing = True
            if self._kv_due is not None:
                self._kv_due = 0.0  # the state is due now: a waiting job wakes and saves it
                self._start_state_job()
            self._cond.notify_all()
        with self._cond:
            ended = self._cond.wait_for(
                lambda: self._pending is None and not self._writing and not self._kv_running,
                timeout)
            self._history = None
        if self._own_pool:
            self._pool.shutdown(wait=False)
        return ended

    def diagnostics(self) -> Dict[str, Any]:
        """Return the file's state as /diagnostics values."""
        return {'history_file': self.path, 'history_status': self.status,
                'history_writes': self.writes,
                'history_snapshot_ms': self.last_snapshot_ms,
                'history_write_ms': self.last_write_ms,
                'kv_state_status': self.kv_status}

    # ---- the chat file ---------------------------------------------------------------
    def _extra(self, turn_id: int, reserve: int) -> Dict[str, Any]:
        # under self._cond: the node's data in the file, with ids up to ``reserve`` reserved
        self._reserved = max(self._reserved, reserve)
        extra: Dict[str, Any] = {'turn_id': turn_id}
        if self._reserved > turn_id + 1:  # else implied: one past the saved turn
            extra['turn_ids_reserved'] = self._reserved
        return extra

    def _hand_over(self, snap: storage.Snapshot) -> int:
        # under self._cond: make ``snap`` the one the writer writes next; return its ticket
        if self._closing:
            return 0
        self._handed += 1
        self._pending, self._pending_ticket, self._last = snap, self._handed, snap
        if not self._writing:
            self._writing = True
            self._pool.submit(self._write_pending)
        return self._handed

    @property
    def reserved(self) -> int:
        """Return the newest turn id that may have been handed out (saved or reserved)."""
        with self._cond:
            return self._reserved

    def reserve(self, turn_id: int) -> None:
        """Have ``turn_id`` reserved on disk before it is used (``ReservedTurnIds``)."""
        # the model's worker, as a turn starts: at once unless a new file or a failed write
        with self._cond:
            if turn_id <= self._reserved_on_disk or self._last is None or self._closing:
                return
            last = self._last
            extra = self._extra(last.doc['extra'].get('turn_id', 0), turn_id)
            snap = storage.Snapshot(dict(last.doc, extra=extra), last.images)
            ticket = self._hand_over(snap)
        if not self.wait_saved(ticket, WRITE_WAIT_S):
            self.logger.warning(f'turn {turn_id} starts before its id is reserved in '
                                f"'{self.path}'")

    def _write_pending(self) -> None:
        # a job on the pool: write the newest snapshot until none is left
        while True:
            with self._cond:
                snap, ticket, self._pending = self._pending, self._pending_ticket, None
                if snap is None:
                    self._writing = False
                    self._cond.notify_all()
                    return
            try:
                written = self._write(snap)
            except Exception as error:  # noqa: BLE001 - the writer must never end silently
                written = False
                self._failed(f"chat not saved to '{self.path}': {type(error).__name__}: {error}")
            with self._cond:
                self._done = ticket
                if written:
                    self._durable = ticket
                    self._reserved_on_disk = max(self._reserved_on_disk,
                                                 _reserved_in(snap.doc['extra']))
                    self._schedule_state(KV_IDLE_S)
                self._cond.notify_all()

    def _write(self, snap: storage.Snapshot) -> bool:
        start = time.perf_counter()
        try:
            storage.write(snap, self.path)
        except (OSError, ValueError) as error:
            self._failed(f"chat not saved to '{self.path}': {error}")
            return False
        self.last_write_ms = 1000.0 * (time.perf_counter() - start)
        self.writes += 1
        self._write_error = ''
        count = len(snap.doc['entries'])
        self.status = (f"saved {count} entr{'y' if count == 1 else 'ies'}, turn "
                       f"{snap.doc['extra'].get('turn_id', 0)}")
        return True

    def _failed(self, text: str) -> None:
        self._write_error = self.status = text
        self.logger.error(text)

    # ---- the KV state ----------------------------------------------------------------
    def _load_state(self, history: Any) -> None:
        # the load thread, at configure: the chat is restored, no reply runs yet
        loaded, reason = cache_file.load_state(history.model, history, self.kv_path,
                                               self._kv_max_bytes)
        self.kv_status = reason if loaded else f'not loaded: {reason}'
        if loaded:
            self.logger.info(f"KV state {reason} from '{self.kv_path}': the next reply "
                             'prefills only its new tokens')
        else:
            self.logger.info(f'KV state ignored ({reason}); the next reply prefills the chat')

    def _schedule_state(self, delay: float) -> None:
        # under self._cond: the KV state is due ``delay`` s from now (debounced: a newer
        # change moves it later); one job on the pool waits for it and saves it
        if self._kv_max_bytes <= 0 or self._history is None or not self._kv_dirty:
            return
        self._kv_due = time.monotonic() + (0.0 if self._closing else delay)
        self._start_state_job()
        self._cond.notify_all()

    def _start_state_job(self) -> None:
        # under self._cond
        if not self._kv_running and self._history is not None:
            self._kv_running = True
            self._pool.submit(self._state_job)

    def _state_job(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._kv_due is not None and time.monotonic() < self._kv_due:
                        self._cond.wait(self._kv_due - time.monotonic())
                    history = self._history
                    if self._kv_due is None or history is None:
                        return
                    self._kv_due, self._kv_dirty = None, False
                self._save_state(history)
        finally:
            with self._cond:
                self._kv_running = False
                self._cond.notify_all()

    def _save_state(self, history: Any) -> None:
        try:
            saved, reason = cache_file.save_state(history.model, history, self.kv_path,
                                                  self._kv_max_bytes, KV_SAVE_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - a job on the pool must not end silently
            saved, reason = False, f'{type(error).__name__}: {error}'
        self.kv_status = reason if saved else f'not saved: {reason}'
        if saved:
            self._kv_warned = ''
            self.logger.debug(f"KV state {reason} to '{self.kv_path}'")
        elif reason != self._kv_warned:
            self._kv_warned = reason
            self.logger.warning(f'KV state not saved: {reason}')


def open_session(load: Callable[[], Any], chat_file: Optional[ChatFile]) -> Any:
    """Return ``load()``'s session with ``chat_file`` restored into its chat (the load thread)."""
    session = load()
    if chat_file is not None:
        try:
            chat_file.restore(session.history)
        except BaseException:
            session.close()
            raise
    return session

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
(``concurrent.futures``), which encodes it and replaces the file (fsync, rename). The write
is off the model's worker thread because an fsync on a robot's SD card or eMMC can take
tens of milliseconds or more, and that thread must be free for the next prompt at once;
only the newest snapshot waits and at most one job writes, so a slow disk never queues up
writes. No rclpy here: the node passes its logger and its pool.

The KV state beside the chat file (issue 20) hooks in at ``restore`` (load it after the
entries) and ``_write`` (save it after the entries are on disk).
"""

from concurrent.futures import Executor, ThreadPoolExecutor
import os
import threading
import time
from typing import Any, Callable, Dict, Optional

from ..chat import storage


class ChatFile:
    """One chat's file: restore it, then write the newest snapshot after each change."""

    def __init__(self, path: str, logger: Any, pool: Optional[Executor] = None):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.logger = logger
        self.turn_id = 0                  # the last turn id saved in the file
        self.status = 'not loaded'        # one line for /diagnostics
        self._bad_file = ''               # set when the file was bad and moved aside
        self._write_error = ''            # set while the last write failed
        self.last_snapshot_ms = float('nan')  # time the caller's thread spent, last save
        self.last_write_ms = float('nan')     # time the writer spent (encode, fsync, rename)
        self.writes = 0
        self._cond = threading.Condition()
        self._pending: Optional[storage.Snapshot] = None
        self._writing = False   # a writer job is queued or running on the pool
        self._closing = False
        # the node's pool; alone (tests, benchmarks) the file has a one-thread pool of its own
        self._own_pool = pool is None
        self._pool = pool if pool is not None else ThreadPoolExecutor(
            1, thread_name_prefix='nano_llm.history_file')

    def restore(self, history: Any) -> None:
        """
        Load the file into ``history`` (a new chat); set ``turn_id`` to the saved one.

        A missing file means a new chat; a bad one is moved aside with the reason logged.
        Raises OSError when the file cannot be read, or is bad and cannot be moved aside (it
        is then never overwritten).
        """
        try:
            restored = storage.restore(history, self.path)
        except OSError as error:
            raise OSError(f"history_file '{self.path}' cannot be used ({error}); fix the path "
                          'or the file, or set history_file to another one') from error
        turn_id = restored.extra.get('turn_id', 0)
        self.turn_id = turn_id if isinstance(turn_id, int) and turn_id >= 0 else 0
        if restored.moved_to:
            self._bad_file = f'history_file was bad, new chat: {restored.note}'
            self.status = self._bad_file
            self.logger.error(restored.note)
        else:
            self.status = restored.note
            self.logger.info(restored.note + (
                f', last turn {self.turn_id}' if restored.loaded else ''))

    @property
    def warning(self) -> str:
        """Return what an operator should know ('' when all is well): bad file, failed write."""
        return self._write_error or self._bad_file

    def changed(self, history: Any, turn_id: int) -> None:
        """Snapshot the chat now (caller's thread) and have the writer save it soon."""
        start = time.perf_counter()
        # under the chat's lock until handed over, so snapshots reach the writer in the
        # order of the changes they hold (the writer never takes the chat's lock)
        with history.lock:
            try:
                snap = storage.snapshot(history, {'turn_id': int(turn_id)})
            except ValueError as error:
                self._failed(f'chat not saved: {error}')
                return
            with self._cond:
                if self._closing:
                    return
                self._pending = snap
                if not self._writing:
                    self._writing = True
                    self._pool.submit(self._write_pending)
        self.last_snapshot_ms = 1000.0 * (time.perf_counter() - start)

    def flush(self, timeout: float) -> bool:
        """Wait until every snapshot taken so far is on disk; return False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._writing,
                                       timeout)

    def close(self, timeout: float) -> bool:
        """Write what is pending, then take no more changes; return False if it did not end."""
        with self._cond:
            self._closing = True
        written = self.flush(timeout)
        if self._own_pool:
            self._pool.shutdown(wait=False)
        return written

    def diagnostics(self) -> Dict[str, Any]:
        """Return the file's state as /diagnostics values."""
        return {'history_file': self.path, 'history_status': self.status,
                'history_writes': self.writes,
                'history_snapshot_ms': self.last_snapshot_ms,
                'history_write_ms': self.last_write_ms}

    def _write_pending(self) -> None:
        # a job on the pool: write the newest snapshot until none is left
        while True:
            with self._cond:
                snap, self._pending = self._pending, None
                if snap is None:
                    self._writing = False
                    self._cond.notify_all()
                    return
            try:
                self._write(snap)
            except Exception as error:  # noqa: BLE001 - the writer must never end silently
                self._failed(f"chat not saved to '{self.path}': {type(error).__name__}: {error}")

    def _write(self, snap: storage.Snapshot) -> None:
        start = time.perf_counter()
        try:
            storage.write(snap, self.path)
        except (OSError, ValueError) as error:
            self._failed(f"chat not saved to '{self.path}': {error}")
        else:
            self.last_write_ms = 1000.0 * (time.perf_counter() - start)
            self.writes += 1
            self._write_error = ''
            self.status = (f"saved {len(snap.doc['entries'])} entries, turn "
                           f"{snap.doc['extra'].get('turn_id', 0)}")

    def _failed(self, text: str) -> None:
        self._write_error = self.status = text
        self.logger.error(text)


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

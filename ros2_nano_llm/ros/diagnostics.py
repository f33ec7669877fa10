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
The node's incidents and its ``/diagnostics`` report (no rclpy here: the node publishes).

``Incidents`` counts dropped prompts and frames and failed callbacks for the life of the
node, and logs at most one line per reason and ``DROP_LOG_PERIOD_S`` (a flood logs one
line, the rest are counted). ``report()`` gathers the node's state and the last reply's
figures into the values and the level of one diagnostic status.
"""

import os
import threading
import time
from typing import Any, Dict, Optional, Tuple

DROP_LOG_PERIOD_S = 5.0  # dropped prompts/frames and failed callbacks: one log line per period


class Throttle:
    """Counts events of one kind and says when a log line about them is due."""

    def __init__(self, period: float):
        self.period = period
        self.count = 0          # events for the life of the node
        self._pending = 0       # events since the last log line
        self._last = -float('inf')
        self._lock = threading.Lock()

    def event(self, now: float) -> Optional[int]:
        """Count one event; return how many went unlogged before it if a line is due, else None."""
        with self._lock:
            self.count += 1
            if now - self._last < self.period:
                self._pending += 1
                return None
            skipped, self._pending, self._last = self._pending, 0, now
            return skipped

    def flush(self, now: float) -> int:
        """Return (and forget) the unlogged events once a period has passed since the last line."""
        with self._lock:
            if not self._pending or now - self._last < self.period:
                return 0
            pending, self._pending, self._last = self._pending, 0, now
            return pending


class Incidents:
    """Dropped prompts and frames and failed callbacks: counted, and logged throttled."""

    def __init__(self, logger: Any):
        self.logger = logger
        self.drops = {'prompts': 0, 'frames': 0}  # for the life of the node
        self.failures = Throttle(DROP_LOG_PERIOD_S)
        self._drop_logs: Dict[str, Throttle] = {}  # one per reason: a flood logs one line
        self._lock = threading.Lock()

    def failed(self, what: str, error: BaseException) -> str:
        """Log a failed callback (throttled) and return the reason for its caller."""
        reason = f'{what} failed: {type(error).__name__}: {str(error)[:300]}'
        skipped = self.failures.event(time.monotonic())
        if skipped is not None:
            more = f' ({skipped} more failures since the last line)' if skipped else ''
            self.logger.error(f'{reason}; the node goes on{more}')
        return reason

    def dropped(self, kind: str, reason: str, line: str) -> None:
        """Count a dropped prompt or frame; log ``line`` unless one was for ``reason`` lately."""
        with self._lock:
            self.drops[kind] += 1
            throttle = self._drop_logs.setdefault(reason, Throttle(DROP_LOG_PERIOD_S))
        skipped = throttle.event(time.monotonic())
        if skipped is not None:
            more = f' ({skipped} more dropped for this reason since the last line)' \
                if skipped else ''
            self.logger.warning(line + more)

    def flush(self) -> None:
        """Log the drops not logged yet, once their period has passed."""
        now = time.monotonic()
        with self._lock:
            logs = list(self._drop_logs.items())
        for reason, throttle in logs:
            pending = throttle.flush(now)
            if pending:
                self.logger.warning(
                    f'{pending} more dropped in the last {DROP_LOG_PERIOD_S:g} s ({reason}); '
                    'the counts are on /diagnostics')


def report(state: str, config: Any, session: Any, worker: Any, functions: Any,
           chat_file: Any, incidents: Incidents, stats: Dict[str, float], stats_turn: int,
           last_error: str, generating: Optional[bool]) -> Tuple[str, Dict[str, Any], str]:
    """
    Return ``(level, values, message)`` of the node's diagnostic status.

    ``level`` is 'OK', 'WARN' or 'ERROR' (the node maps it to ``DiagnosticStatus``);
    ``session``, ``worker`` and ``chat_file`` are None when the node has none.
    """
    values: Dict[str, Any] = {
        'state': state, 'model': config.model,
        'api': session.model.api if session else config.api,
        'turn_id': session.turn_ids.last if session else 0,
        'generating': bool(worker and worker.busy) if generating is None else generating,
        'queue_length': worker.queue_length if worker else 0,
        'prompts_dropped': incidents.drops['prompts'],
        'frames_dropped': incidents.drops['frames'],
        'callback_failures': incidents.failures.count,
        'stats_turn_id': stats_turn,
        'last_ttft_ms': 1000.0 * stats.get('time_to_first_token', float('nan')),
        'last_prompt_setup_ms': 1000.0 * worker.last_setup_s if worker else float('nan'),
        'tokens_per_second': stats.get('decode_rate', float('nan')),
        'prefill_tokens_per_second': stats.get('prefill_rate', float('nan')),
        'input_tokens': int(stats.get('input_tokens', 0)),
        'output_tokens': int(stats.get('output_tokens', 0)),
        'cache_tokens': len(session.history.kv_cache) if session else 0,
        'context_size': session.model.config.max_context_len if session else 0,
        'chat_entries': len(session.history) if session else 0,
        'functions': ', '.join(f.name for f in functions or ()),
        'memory_rss_mb': rss_mb(),
    }
    if chat_file is not None:
        values.update(chat_file.diagnostics())
    if last_error:
        return 'ERROR', values, last_error
    if chat_file is not None and chat_file.warning:
        return 'WARN', values, chat_file.warning
    if state == 'active':
        return 'OK', values, 'generating' if values['generating'] else 'idle'
    return 'OK', values, state


def rss_mb() -> float:
    """Return the process's resident memory in MiB (nan where /proc is not there)."""
    try:
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
    except (OSError, ValueError, IndexError):
        return float('nan')

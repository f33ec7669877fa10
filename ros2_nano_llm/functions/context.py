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
The call now running on this thread: its id, its turn, and where its progress is reported.

Whoever runs a bot function sets :data:`current_call` around it (:func:`running`); a
function that has progress to show (a robot action's feedback) calls :func:`report`, which
does nothing outside a call. A ``ContextVar``, so each call on the thread pool sees its own.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional


def _ignore(event: str, text: str) -> None:
    """Drop a report (a call nobody listens to)."""


def _never() -> bool:
    """Say that the call's reply was not stopped (a call that belongs to no reply)."""
    return False


@dataclass
class CallContext:
    """
    One running call: ``report(event, text)`` publishes its progress (e.g. 'feedback').

    ``stopped()`` turns True once the reply that made the call was stopped (``~/stop``, a
    cancelled goal, an interrupting prompt, deactivate): a long function may end early.
    """

    call_id: str
    name: str
    turn_id: int = 0
    report: Callable[[str, str], None] = field(default=_ignore)
    stopped: Callable[[], bool] = field(default=_never)


current_call: ContextVar[Optional[CallContext]] = ContextVar('current_call', default=None)


@contextmanager
def running(context: CallContext) -> Iterator[CallContext]:
    """Make ``context`` the current call inside the ``with`` block."""
    token = current_call.set(context)
    try:
        yield context
    finally:
        current_call.reset(token)


def report(event: str, text: str) -> None:
    """Report progress of the current call (nothing when no call is running)."""
    context = current_call.get()
    if context is not None:
        context.report(event, text)


__all__ = ['CallContext', 'current_call', 'report', 'running']

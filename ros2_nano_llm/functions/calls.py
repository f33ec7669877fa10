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
The record of a function call the library ran during a reply (``StreamingResponse.calls``).

Only calls the library handled are recorded, each with the result text that joined the
chat; text the model writes that merely looks like a call result is never one.
"""

from dataclasses import dataclass, field
import json
from typing import Any, Dict, Optional, Sequence

from .parsing import DEFAULT_TIMEOUT, execute_call, ToolCall
from .record import find_record
from .runner import CallRunner


@dataclass
class FunctionCall:
    """
    One call made during a reply.

    ``name``, ``args`` (bound by argument name where the call binds), ``result`` (the
    text fed back to the model) and ``success`` (False for a call that could not run or
    whose function failed: its result is an ``'error: ...'`` text). ``call`` is the
    parsed call; ``token_start``/``token_end`` are where its result sits in
    ``reply.tokens``; ``content`` is the result as placed in the chat and ``turn`` is
    True when it was placed as its own ``tool_response`` turn. ``call_id`` is the id its
    events were reported with (``guard.CallEvent``); ``ran`` is False for a call that was
    refused (bad arguments, over the budget, denied, stopped) and never reached its function.
    """

    name: str
    args: Dict[str, Any] = field(default_factory=dict)
    result: str = ''
    success: bool = False
    call: Optional[ToolCall] = None
    token_start: int = 0
    token_end: int = 0
    content: str = ''
    turn: bool = False
    call_id: str = ''
    ran: bool = False

    @property
    def args_json(self) -> str:
        """Return ``args`` as JSON (values that are not JSON become strings)."""
        return json.dumps(self.args, default=str)


def bound_args(call: ToolCall, functions: Sequence[Any]) -> Dict[str, Any]:
    """Return the call's arguments by name (positional ones bound to the signature)."""
    func = find_record(call.name, functions)
    if func is not None and not call.error:
        try:
            return dict(func.bind(call.args, call.kwargs).arguments)
        except TypeError:
            pass
    args = {str(i): value for i, value in enumerate(call.args)}
    args.update(call.kwargs)
    return args


def run_call(call: ToolCall, functions: Sequence[Any], timeout: float = DEFAULT_TIMEOUT,
             runner: Optional[CallRunner] = None, **checks: Any) -> FunctionCall:
    """
    Run ``call`` (never raises) and return its record (placement fields left unset).

    ``checks`` are ``execute``'s keyword arguments (``policy``, ``turn_id``, ``stopped``).
    """
    result, made = execute_call(call, functions, timeout=timeout, runner=runner, **checks)
    return FunctionCall(name=call.name, args=bound_args(call, functions), result=result,
                        success=not call.error and not result.startswith('error:'), call=call,
                        call_id=made.context.call_id, ran=made.started)


__all__ = ['FunctionCall', 'bound_args', 'run_call']

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
The edge of every ROS callback of the node: no exception leaves it, the failure is reported.

``edge(what, Report.X)`` decorates a callback of an object with an ``incidents``
(``diagnostics.Incidents``): the error is logged (throttled) and counted, and the caller gets
the reason in the form the callback's kind declares (``Report``).
"""

import enum
import functools
from typing import Any, Callable

from rcl_interfaces.msg import SetParametersResult


class Report(enum.Enum):
    """How a callback says that it failed: its kind, declared where it is decorated."""

    LOG = 'log'              # a subscription or a timer: the log line only
    MESSAGE = 'message'      # a service response with ``success`` and ``message``
    RESULT = 'result'        # a service response with ``success`` and ``result``
    PARAMETERS = 'parameters'  # a parameter callback: the change is refused


def edge(what: str, report: Report = Report.LOG) -> Callable:
    """
    Decorate a callback so that no exception leaves it: catch, log and report.

    ``report`` says how: a service's response gets ``success=False`` and the reason, a
    parameter callback refuses the change, others return None.
    """
    def decorate(callback: Callable) -> Callable:
        @functools.wraps(callback)
        def guarded(self, *args):
            try:
                return callback(self, *args)
            except Exception as error:  # noqa: BLE001 - the callback's edge: report, go on
                reason = self.incidents.failed(what, error)
                if report is Report.PARAMETERS:
                    return SetParametersResult(successful=False, reason=reason)
                if report is not Report.LOG:  # (request, response)
                    return failed(args[1], reason, report)
                return None
        return guarded
    return decorate


def log_outcome(logger: Any, ok: bool, line: str) -> None:
    """Log ``line`` as info when ``ok``, else as a warning (one call site per severity)."""
    # rclpy raises if one call site logs at two severities: hence two calls, never one
    if ok:
        logger.info(line)
    else:
        logger.warning(line)


def failed(response: Any, reason: str, report: Report = Report.MESSAGE) -> Any:
    """Fill a service ``response`` with ``success=False`` and ``reason``; return it."""
    response.success = False
    if report is Report.RESULT:
        response.result = f'error: {reason}'
    else:
        response.message = reason
    return response

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
The call budget (issue 19 item 2): a reply that keeps calling stops at max_calls_per_turn.

Over real DDS: the node (tiny random Llama) gets a reply that calls ``move_forward`` five
times (its ``reply_prefix``); only ``max_calls_per_turn`` of them reach the robot (this test
process), the others are published as 'refused' on ``~/output/calls`` and the model reads
why. The parameter applies live to the next reply and is refused out of its range.
"""

from call_helpers import safety_node, serve_robot  # noqa: F401 (a fixture)
from node_harness import grep
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIVE_CALLS = ' '.join(['move_forward()'] * 5)


def _refusal(limit):
    return (f'error: not run: this reply already made its {limit} function '
            f'call{"" if limit == 1 else "s"}, the limit')


@pytest.fixture(scope='module')
def node(robot, tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama with the safety robot's actions (default budget)."""
    with safety_node(tmp_path_factory, tiny_model_dir, 'nano_llm_budget', max_new_tokens=4,
                     reply_prefix=FIVE_CALLS) as node:
        yield node


def test_a_reply_that_keeps_calling_stops_at_the_budget(node, robot):
    process, client, watch = node
    assert client.get_param('max_calls_per_turn') == 3  # the default
    for limit in (3, 1):
        assert client.set_params(max_calls_per_turn=limit)[0].successful
        robot_mark, (calls_mark, _) = robot.count(), watch.mark()
        _, reply = client.ask('Forward, and keep going.')
        assert robot.names(robot_mark) == ['move_forward'] * limit
        refused = watch.entries(calls_mark, 'refused', 'move_forward')
        assert len(refused) == 5 - limit
        assert all(r.result == _refusal(limit) for r in refused)
        assert len(watch.entries(calls_mark, 'ended', 'move_forward')) == limit
        # the model read why, for each call past the budget (the results of calls that one
        # piece of text completes follow that piece: here the whole reply_prefix)
        assert reply.count(f' -> {_refusal(limit)}') == 5 - limit, reply
        assert grep(process, f'call {refused[-1].call_id} move_forward.* refused -> ')


def test_the_budget_parameter_is_refused_out_of_range(node):
    process, client, watch = node
    assert client.set_params(max_calls_per_turn=2)[0].successful
    for bad in (0, 101):
        result, = client.set_params(max_calls_per_turn=bad)
        assert not result.successful and 'max_calls_per_turn' in result.reason
    assert client.get_param('max_calls_per_turn') == 2

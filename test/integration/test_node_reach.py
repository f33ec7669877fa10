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
A node every client can reach, over real DDS: an inactive node, bursts, stop in a prefill.

Issue 21 item 4: the interfaces live from configure to cleanup; while inactive the history
and the function list answer, a prompt, a goal and ``~/call_function`` are refused ("inactive:
activate first") and a prompt counts as dropped. Item 14: bursts of goals, of cancels and of
``~/get_history`` calls each get every answer (the request queues are deep enough). Item 12:
``~/stop`` during a long prefill answers without waiting for the reply, and the chat keeps
whole turns.
"""

import threading
import time

from node_harness import grep, start_node, stop_node
import pytest
from rclpy.action import ActionClient
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros2_nano_llm.action import Generate
from ros2_nano_llm.srv import CallFunction, GetHistory

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT = 120.0
LONG = 2000  # max_new_tokens of a reply that only ends when stopped
DEEP = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=500,
                  reliability=ReliabilityPolicy.RELIABLE)
INACTIVE = 'inactive: activate first'


@pytest.fixture(scope='module')
def inactive(tmp_path_factory, tiny_model_dir):
    """Return (process, client) of a configured node that was never activated."""
    process, client = start_node(tmp_path_factory.mktemp('node_reach'),
                                 {'model': tiny_model_dir('llama'), 'builtin_functions':
                                  ['TIME'], 'max_new_tokens': 8}, activate=False)
    try:
        assert client.transition('configure'), process.log()[-3000:]
        yield process, client
    finally:
        stop_node(process, client)


def _drops(client, after):
    values = client.wait_diagnostics(lambda v: 'prompts_dropped' in v, after=after)
    return int(values['prompts_dropped'])


def _wait_all(futures, timeout=WAIT):
    """Wait until every rclpy future is done; return how many are not."""
    done = threading.Semaphore(0)
    for future in futures:
        future.add_done_callback(lambda _: done.release())
    deadline = time.monotonic() + timeout
    for _ in futures:
        if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
    return sum(not f.done() for f in futures)


def test_an_inactive_node_answers_and_refuses_with_the_reason(inactive):
    process, client = inactive
    assert client.state() == 'inactive'
    # what needs no active node answers
    history = client.call('get_history', timeout=30.0)
    assert history.success and [e.role for e in history.entries] == ['system']
    assert list(client.call('list_functions', timeout=30.0).names) == ['TIME']
    # what needs one is refused, with the reason
    called = client.call('call_function', CallFunction.Request(name='TIME'), timeout=30.0)
    assert not called.success and INACTIVE in called.result
    log_start = len(process.log())
    goals = ActionClient(client.node, Generate, f'{client.target}/generate')
    try:
        assert goals.wait_for_server(timeout_sec=30.0), 'no ~/generate server while inactive'
        future = goals.send_goal_async(Generate.Goal(prompt='Hello?'))
        assert _wait_all([future], 30.0) == 0 and not future.result().accepted
        process.wait_for_log(f'~/generate goal rejected: .*{INACTIVE}', start=log_start)
    finally:
        goals.destroy()
    # a prompt finds the subscription (a publisher no longer waits forever) and is dropped
    mark = client.mark()
    before = _drops(client, mark['diagnostics'])
    deadline = time.monotonic() + 30.0
    while client.text_pub.get_subscription_count() == 0:
        assert time.monotonic() < deadline, '~/input/text has no subscription while inactive'
        time.sleep(0.05)
    client.publish('Are you there?')
    client.wait_diagnostics(lambda v: int(v['prompts_dropped']) == before + 1,
                            after=mark['diagnostics'])
    assert grep(process, rf'prompt dropped \(.*{INACTIVE}.*\)', log_start)
    assert client.no_new_turn(mark['turn'], 0.5)
    assert [e.role for e in client.history().entries] == ['system']  # nothing was taken


def test_interfaces_stay_through_activate_and_deactivate(inactive):
    process, client = inactive
    assert client.transition('activate')
    client.wait_connected()
    _, reply = client.ask('Hello, node.')
    assert client.transition('deactivate')
    chat = client.history_texts()  # answered while inactive: the chat is kept
    assert chat[-2:] == [('user', 'text', 'Hello, node.'), ('bot', 'text', reply)]
    assert client.transition('activate')  # for the tests below


@pytest.fixture
def active(inactive):
    process, client = inactive
    if client.state() != 'active':
        assert client.transition('activate')
    client.wait_connected()
    yield process, client
    client.call('stop')
    assert all(r.successful for r in client.set_params(
        busy_policy='queue', max_queue=4, max_new_tokens=8))
    client.settle()
    assert process.alive, process.log()[-3000:]


def _burst(client, count, **settings):
    """Send ``count`` goals at once, cancel the accepted ones; return how many were accepted."""
    assert all(r.successful for r in client.set_params(max_new_tokens=LONG, **settings))
    goals = ActionClient(client.node, Generate, f'{client.target}/generate',
                         goal_service_qos_profile=DEEP, result_service_qos_profile=DEEP,
                         cancel_service_qos_profile=DEEP)
    try:
        assert goals.wait_for_server(timeout_sec=30.0)
        sent = [goals.send_goal_async(Generate.Goal(prompt=f'Goal {i}.')) for i in range(count)]
        assert _wait_all(sent) == 0, 'goals were never accepted nor rejected'
        accepted = [f.result() for f in sent if f.result().accepted]
        cancels = [h.cancel_goal_async() for h in accepted]
        assert _wait_all(cancels) == 0, 'cancel requests were never answered'
        results = [h.get_result_async() for h in accepted]
        assert _wait_all(results) == 0, 'accepted goals never ended'
        return len(accepted)
    finally:
        goals.destroy()


@pytest.mark.parametrize('policy', ['queue', 'drop', 'interrupt'])
def test_twenty_goals_at_once_are_each_accepted_or_rejected(active, policy):
    process, client = active
    accepted = _burst(client, 20, busy_policy=policy, max_queue=4)
    assert 0 < accepted and (accepted < 20 or policy == 'interrupt')  # refused some, said so


def test_a_cancel_storm_of_fifty_goals_is_answered(active):
    process, client = active
    assert _burst(client, 50, busy_policy='queue', max_queue=60) == 50  # max_queue holds all


def test_twenty_concurrent_get_history_calls_are_all_answered(active):
    process, client = active
    history = client.node.create_client(GetHistory, f'{client.target}/get_history',
                                        qos_profile=DEEP)
    try:
        assert history.wait_for_service(timeout_sec=30.0)
        calls = [history.call_async(GetHistory.Request()) for _ in range(20)]
        assert _wait_all(calls) == 0, 'get_history calls were never answered'
        assert all(c.result().success for c in calls)
    finally:
        client.node.destroy_client(history)


def test_stop_in_a_long_prefill_answers_and_the_chat_stays_whole(active):
    process, client = active
    assert all(r.successful for r in client.set_params(max_new_tokens=LONG))
    mark = client.mark()
    prompt = ' '.join(f'word{i}' for i in range(300))  # a long prefill (~1,000 tokens)
    client.publish(prompt)
    deadline = time.monotonic() + 30.0
    while 'in progress' not in client.call('get_history').message:  # the turn has begun
        assert time.monotonic() < deadline, 'the turn never started'
        time.sleep(0.005)
    response = client.call('stop')
    assert response.success and 'stopped turn' in response.message, response.message
    assert 'did not end within' not in response.message
    client.wait_turn_end(mark['turn'], timeout=WAIT)
    client.settle()
    history = client.history()
    assert 'in progress' not in history.message
    roles = [e.role for e in history.entries]
    assert roles[-2:] == ['user', 'bot'] and history.entries[-2].text == prompt

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
The nano_llm node over real DDS: streaming, memory, reset, stop, busy policies, parameters.

One node process (the installed executable, a tiny random-weight Llama, greedy) serves the
whole module; every test starts from a reset chat and the default parameters. Expected
replies come from the library itself, run in this process on the same model.
"""

import time

from node_harness import grep, reference_replies, start_node, stop_node
import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEFAULTS = {'max_new_tokens': 24, 'busy_policy': 'queue', 'max_queue': 4, 'do_sample': False,
            'temperature': 0.7, 'system_prompt': ''}
LONG = 2000  # max_new_tokens for a reply that only ends when stopped


@pytest.fixture(scope='module')
def chat_node(tiny_model_dir, tmp_path_factory):
    """Start one node on the tiny Llama for the module; end it afterwards."""
    process, client = start_node(tmp_path_factory.mktemp('node_chat'),
                                 {'model': tiny_model_dir('llama')})
    yield process, client
    stop_node(process, client)


@pytest.fixture
def node(chat_node):
    """Return (process, client) with the default parameters and an empty chat."""
    process, client = chat_node
    assert all(r.successful for r in client.set_params(**DEFAULTS))
    assert client.call('reset').success
    client.settle()
    yield process, client
    assert process.alive, process.log()[-3000:]


def _entries(client):
    return client.history_texts()


def _wait_first_piece(client, after, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turns = [t for i, t in client.turns.items() if i > after and t.pieces]
        if turns:
            return turns[0]
        time.sleep(0.01)
    raise AssertionError('no reply started')


def test_pieces_concatenate_to_the_reply_and_eos_arrives_once(node):
    process, client = node
    mark = client.mark()
    turn, reply = client.ask('Hello there!')
    assert reply and turn.text == reply
    indexes = sorted(m.token_index for m in turn.pieces)
    assert indexes == list(range(len(turn.pieces)))
    assert len(turn.eos) == 1 and turn.eos[0].token_index == len(turn.pieces)
    assert turn.eos[0].text == ''
    assert ''.join(client.tokens[-len(turn.pieces):]) == reply
    # nothing more arrives for the turn afterwards
    time.sleep(0.3)
    assert len(turn.eos) == 1 and len(client.replies) == mark['replies'] + 1
    assert _entries(client)[-1] == ('bot', 'text', reply)


def test_second_prompt_remembers_the_first_turn(node, tiny_llama):
    process, client = node
    first, second = 'My name is Ada.', 'What is my name?'
    _, reply1 = client.ask(first)
    cache_after_1 = client.history().cache_tokens
    mark = client.mark()
    turn2, reply2 = client.ask(second)
    expected = reference_replies(tiny_llama, [first, second])
    alone = reference_replies(tiny_llama, [second])
    assert [reply1, reply2] == expected
    assert reply2 != alone[0], 'the first turn made no difference: it was not remembered'
    system = _entries(client)[0]
    assert _entries(client) == [system, ('user', 'text', first), ('bot', 'text', reply1),
                                ('user', 'text', second), ('bot', 'text', reply2)]
    history = client.history()
    assert history.cache_tokens > cache_after_1 and history.context_len == 4096
    assert all(entry.num_tokens > 0 for entry in history.entries)
    assert [entry.cached for entry in history.entries[:4]] == [True] * 4
    # the second turn prefilled only its own prompt: the first turn came from the KV cache
    diag = client.wait_diagnostics(lambda v: v['stats_turn_id'] == str(turn2.turn_id),
                                   after=mark['diagnostics'])
    assert 0 < int(diag['input_tokens']) < cache_after_1
    assert int(diag['cache_tokens']) == history.cache_tokens
    assert float(diag['last_ttft_ms']) > 0 and float(diag['tokens_per_second']) > 0


def test_reset_forgets(node, tiny_llama):
    process, client = node
    client.ask('My name is Ada.')
    response = client.call('reset')
    assert response.success and 'cleared' in response.message
    assert [e[0] for e in _entries(client)] == ['system']
    _, reply = client.ask('What is my name?')
    assert reply == reference_replies(tiny_llama, ['What is my name?'])[0]


def test_stop_ends_the_reply_and_keeps_the_partial_text(node, tiny_llama):
    process, client = node
    assert client.set_params(max_new_tokens=LONG)[0].successful
    mark = client.mark()
    client.publish('Tell me a very long story.')
    _wait_first_piece(client, mark['turn'])
    response = client.call('stop')
    assert response.success and 'stopped turn' in response.message
    turn, = client.wait_turn_end(mark['turn'], timeout=30.0)
    assert len(turn.eos) == 1 and 0 < len(turn.pieces) < LONG  # ended by the stop
    reply = client.wait_replies(mark['replies'])[0]
    assert reply == turn.text
    entries = _entries(client)
    assert entries[-2:] == [('user', 'text', 'Tell me a very long story.'),
                            ('bot', 'text', reply)]
    # the chat goes on consistently after the stop
    assert client.set_params(max_new_tokens=24)[0].successful
    _, after = client.ask('Go on.')
    assert _entries(client)[-2:] == [('user', 'text', 'Go on.'), ('bot', 'text', after)]
    assert client.call('stop').message == 'no reply was in progress'


def test_busy_policy_queue_answers_in_order(node):
    process, client = node
    prompts = ['one', 'two', 'three']
    mark = client.mark()
    for prompt in prompts:
        client.publish(prompt)
    turns = client.wait_turn_end(mark['turn'], count=3)
    replies = client.wait_replies(mark['replies'], 3)
    assert [t.text for t in turns] == replies
    users = [e[2] for e in _entries(client) if e[0] == 'user']
    bots = [e[2] for e in _entries(client) if e[0] == 'bot']
    assert users == prompts and bots == replies


def test_busy_policy_queue_is_bounded(node):
    process, client = node
    assert all(r.successful for r in client.set_params(max_queue=1, max_new_tokens=200))
    mark = client.mark()
    log_start = len(process.log())
    client.publish('first')
    _wait_first_piece(client, mark['turn'])
    for prompt in ('second', 'third', 'fourth'):
        client.publish(prompt)
    process.wait_for_log(r'prompt dropped .*max_queue', start=log_start)
    assert client.set_params(max_new_tokens=8)[0].successful
    client.call('stop')  # ends 'first' and drops what waits
    client.settle()
    users = [e[2] for e in _entries(client) if e[0] == 'user']
    assert users[0] == 'first' and set(users) <= {'first', 'second'}
    # each drop is counted on /diagnostics; the log says it once per period (throttled)
    client.wait_diagnostics(lambda v: int(v['prompts_dropped']) >= 2, after=mark['diagnostics'])


def test_busy_policy_interrupt_stops_the_reply_for_the_new_prompt(node):
    process, client = node
    results = client.set_params(busy_policy='interrupt', max_new_tokens=LONG)
    assert all(r.successful for r in results)
    mark = client.mark()
    client.publish('first')
    _wait_first_piece(client, mark['turn'])
    assert client.set_params(max_new_tokens=8)[0].successful  # for the second reply
    client.publish('second')
    first, second = client.wait_turn_end(mark['turn'], count=2, timeout=20.0)
    replies = client.wait_replies(mark['replies'], 2)
    assert 0 < len(first.pieces) < LONG and len(second.pieces) <= 8
    assert _entries(client)[1:] == [('user', 'text', 'first'), ('bot', 'text', replies[0]),
                                    ('user', 'text', 'second'), ('bot', 'text', replies[1])]
    assert grep(process, r"prompt 'second' \(interrupted turn")


def test_busy_policy_drop_ignores_prompts_during_a_reply(node):
    process, client = node
    results = client.set_params(busy_policy='drop', max_new_tokens=LONG)
    assert all(r.successful for r in results)
    mark = client.mark()
    log_start = len(process.log())
    client.publish('first')
    _wait_first_piece(client, mark['turn'])
    client.publish('second')
    process.wait_for_log(r"prompt dropped \(busy with a reply and busy_policy is 'drop'\)",
                         start=log_start)
    client.call('stop')
    client.settle()
    assert client.no_new_turn(mark['turn'] + 1, 0.5)
    assert [e[2] for e in _entries(client) if e[0] == 'user'] == ['first']


def test_services_answer_while_a_reply_is_generated(node):
    process, client = node
    assert client.set_params(max_new_tokens=LONG)[0].successful
    mark = client.mark()
    client.publish('Talk for a while.')
    _wait_first_piece(client, mark['turn'])
    history = client.history()
    # answered while the reply was still being generated: the bot's turn is not in yet
    assert history.entries[-1].text == 'Talk for a while.'
    diag = client.wait_diagnostics(lambda v: v['generating'] == 'True',
                                   after=mark['diagnostics'], timeout=5.0)
    assert diag['state'] == 'active'
    client.call('stop')


def test_sampling_changes_apply_to_the_next_reply(node):
    process, client = node
    assert client.set_params(max_new_tokens=5)[0].successful
    mark = client.mark()
    turn, _ = client.ask('Count with me.')
    assert 0 < len(turn.pieces) <= 5
    diag = client.wait_diagnostics(lambda v: v['stats_turn_id'] == str(turn.turn_id),
                                   after=mark['diagnostics'])
    assert int(diag['output_tokens']) <= 5
    results = client.set_params(do_sample=True, temperature=1.3, top_p=0.9)
    assert all(r.successful for r in results)
    turn, reply = client.ask('Again, with feeling.')
    assert reply and turn.eos
    assert grep(process, r'parameters changed: .*temperature=1\.3')


def test_system_prompt_change_resets_the_chat(node):
    process, client = node
    client.ask('Remember this.')
    assert client.set_params(system_prompt='You are a careful robot.')[0].successful
    process.wait_for_log('system prompt changed: the chat was reset')
    deadline = time.monotonic() + 10.0
    while _entries(client) != [('system', 'text', 'You are a careful robot.')]:
        assert time.monotonic() < deadline, _entries(client)
        time.sleep(0.1)
    _, reply = client.ask('Who are you?')
    assert _entries(client)[1:] == [('user', 'text', 'Who are you?'), ('bot', 'text', reply)]


def test_reload_parameters_are_refused_while_active(node):
    process, client = node
    for name, value in (('model', 'default'), ('api', 'mlc'), ('chat_template', 'llama-3'),
                        ('max_context_len', 256)):
        result, = client.set_params(**{name: value})
        assert not result.successful
        assert 'deactivate and clean up' in result.reason and 'active' in result.reason
    assert client.get_param('model') != 'default'
    assert client.state() == 'active'


def test_text_only_model_ignores_images_and_says_so_once(node):
    process, client = node
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    for _ in range(2):
        client.publish_image(rgb)
        time.sleep(0.2)
        _, reply = client.ask('What do you see?')
        assert reply
    assert all(e[1] == 'text' for e in _entries(client))
    assert len(grep(process, 'has no vision: images are ignored')) == 1

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
Settings that would make every prompt fail are refused with the reason (issue 11 items 5, 6).

One node process (a tiny random-weight Llama at a 512-token context, so the chat holds at
most 256 tokens) is offered a ``wrap_tokens`` that can never wrap, a system prompt that
leaves no room for the chat and a ``reply_prefix`` longer than the room kept for replies.
Each is refused when set, the chat goes on, and many turns later prompts still fit; a
configure with such a system prompt fails with the reason.
"""

from node_harness import grep, start_node, stop_node
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTEXT = 512


@pytest.fixture(scope='module')
def live(tiny_model_dir, tmp_path_factory):
    """Start one node at a 512-token context."""
    process, client = start_node(tmp_path_factory.mktemp('node_settings'),
                                 {'model': tiny_model_dir('llama'),
                                  'max_context_len': CONTEXT, 'max_new_tokens': 16})
    try:
        yield process, client
    finally:
        stop_node(process, client)


@pytest.fixture
def node(live):
    """Return (process, client) with an empty chat; check it is still usable afterwards."""
    process, client = live
    assert client.call('reset').success
    yield process, client
    assert process.alive, process.log()[-3000:]
    _, reply = client.ask('Are you still fine?')
    assert client.history_texts()[-1] == ('bot', 'text', reply)


def _turns(client, count):
    for i in range(count):
        _, reply = client.ask(f'Turn {i}: tell me about robots.')
        assert client.history_texts()[-1] == ('bot', 'text', reply)


def test_wrap_tokens_that_can_never_wrap_is_refused_when_set(node):
    process, client = node
    result, = client.set_params(wrap_tokens=100000)  # inside its declared range
    assert not result.successful
    assert 'wrap_tokens=100000 cannot be kept when the chat wraps' in result.reason, result.reason
    assert client.get_param('wrap_tokens') == 0
    _turns(client, 8)  # the chat overflows and wraps; no prompt is refused
    assert not grep(process, 'prompt rejected')
    assert client.set_params(wrap_tokens=100)[0].successful
    try:
        _turns(client, 4)
        assert not grep(process, 'prompt rejected')
    finally:
        assert client.set_params(wrap_tokens=0)[0].successful


def test_system_prompt_that_leaves_no_room_is_refused_when_set(node):
    process, client = node
    before = client.history_texts()
    result, = client.set_params(system_prompt='You are a robot. ' * 400)
    assert not result.successful
    assert 'system_prompt takes' in result.reason and 'too little room' in result.reason
    assert client.history_texts() == before  # refused: the chat was not reset
    assert client.set_params(system_prompt='You are a small robot.')[0].successful
    try:
        _turns(client, 3)
    finally:
        assert client.set_params(system_prompt='')[0].successful


def test_reply_prefix_longer_than_the_reply_room_is_refused(node):
    process, client = node
    result, = client.set_params(reply_prefix='go ' * 1500)
    assert not result.successful
    assert 'reply_prefix takes' in result.reason and 'kept for the reply' in result.reason
    assert client.get_param('reply_prefix') == ''
    _turns(client, 2)
    history = client.history()
    assert history.cache_tokens < CONTEXT


def test_configure_with_a_system_prompt_that_cannot_fit_fails_with_the_reason(node):
    process, client = node
    assert client.transition('deactivate') and client.transition('cleanup')
    start = len(process.log())
    try:
        assert client.set_params(system_prompt='You are a robot. ' * 400)[0].successful
        assert client.transition('configure') is False
        process.wait_for_log(r'configure failed: ValueError: system_prompt takes \d+ tokens',
                             start=start)
    finally:
        assert client.set_params(system_prompt='')[0].successful
        assert client.transition('configure') and client.transition('activate')
        client.wait_connected()

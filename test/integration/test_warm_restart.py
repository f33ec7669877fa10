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
Warm restart of the node (issue 20 item 3) over real DDS, on the embedded SmolLM2 (llama_cpp).

The node saves the chat's KV state beside ``history_file`` once it has been idle a short
while; after ``kill -9`` and a restart, configure loads it and the first turn prefills only
its own tokens (``input_tokens`` on ``/diagnostics``, ``cache_tokens`` of
``~/get_history``) and replies as the process that never stopped did. A cut, altered or
mismatched state file is ignored with the reason in the log, the chat is prefilled again,
and the reply is the one a cold prefill gives.
"""

import os
import re
import shutil
import time

from node_harness import grep, REPO_ROOT, start_node, stop_node
import pytest
from ros2_nano_llm.models import cache_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPTS = ['My name is Ada and I build robots.', 'I live in Lisbon, by the sea.']
QUESTION = 'What is my name?'
MAX_NEW_TOKENS = 16


def _overrides(path, **more):
    return {'model': 'default', 'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048,
            'max_new_tokens': MAX_NEW_TOKENS, 'history_file': str(path), **more}


def _start(folder, path, activate=True, **more):
    folder.mkdir(exist_ok=True)
    return start_node(folder, _overrides(path, **more), activate=activate,
                      params_file=REPO_ROOT / 'config' / 'nano_llm_tiny.yaml')


def _saved_tokens(path):
    snap, reason = cache_file.read_snapshot(cache_file.state_path(str(path)))
    assert snap is not None, reason
    return len(snap.keys)


def _input_tokens(client, turn_id):
    values = client.wait_diagnostics(lambda v: v.get('stats_turn_id') == str(turn_id))
    return int(values['input_tokens'])


def _wait_for_file(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f'{path} was not written within {timeout} s'
        time.sleep(0.1)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """
    Two turns, the state saved while idle, then the question, then kill -9.

    Returns the figures (a dict): the folder, the chat file, the tokens saved after two
    turns, and ``continuous``: the reply to the question in the process that never stopped.
    """
    pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed')
    folder = tmp_path_factory.mktemp('warm_restart')
    path = folder / 'chat.json'
    process, client = _start(folder / 'first', path)
    try:
        for prompt in PROMPTS:
            client.ask(prompt, timeout=120.0)
        # the node is idle: the state of the whole chat is saved by itself (with no
        # transition or exit) a short while after the last change
        cached = client.history().cache_tokens
        _wait_for_file(cache_file.state_path(str(path)))
        deadline = time.monotonic() + 30.0
        while _saved_tokens(path) != cached:
            assert time.monotonic() < deadline, (_saved_tokens(path), cached)
            time.sleep(0.1)
        shutil.copy(path, folder / 'chat.saved')
        shutil.copy(cache_file.state_path(str(path)), folder / 'kv.saved')
        continuous = client.ask(QUESTION, timeout=120.0)[1]
        process.process.kill()
        assert process.process.wait(10) == -9
    finally:
        stop_node(process, client)
    return {'folder': folder, 'path': path, 'cached': cached, 'continuous': continuous}


def _put_back(saved, state=True):
    folder, path = saved['folder'], saved['path']
    shutil.copy(folder / 'chat.saved', path)
    if state:
        shutil.copy(folder / 'kv.saved', cache_file.state_path(str(path)))
    elif os.path.exists(cache_file.state_path(str(path))):
        os.remove(cache_file.state_path(str(path)))
    return folder, path, saved['cached']


def test_restart_prefills_only_the_new_turn(saved):
    folder, path, cached = _put_back(saved)
    size = os.path.getsize(cache_file.state_path(str(path)))
    print(f'KV state: {cached} tokens in {size} bytes, '
          f'{size / cached * 1000 / 1e6:.1f} MB per 1,000 tokens')
    process, client = _start(folder / 'warm', path)
    try:
        assert grep(process, f'KV state loaded {cached} tokens')
        history = client.history()
        assert history.cache_tokens == cached  # restored at configure, before any prompt
        turn, warm = client.ask(QUESTION, timeout=120.0)
        # the same reply as in the process that never stopped: the same cache
        assert warm == saved['continuous']
        new_tokens = _input_tokens(client, turn.turn_id)
        # the question's own tokens and the template around it (and, on llama.cpp, the
        # last reply's positions decoded one at a time), never the whole chat
        assert 0 < new_tokens <= MAX_NEW_TOKENS + 30 < cached, (new_tokens, cached)
        # deactivate saves the state of the chat as it is now (the question and its reply)
        assert client.transition('deactivate')
        deadline = time.monotonic() + 30.0
        while _saved_tokens(path) <= cached:
            assert time.monotonic() < deadline, 'deactivate did not save the KV state'
            time.sleep(0.1)
    finally:
        stop_node(process, client)
    assert process.process.returncode == 0
    # without a state file the chat is prefilled again (in one batch: on llama.cpp its
    # reply may differ from the cached one within the backend's tolerance, issue 20)
    _put_back(saved, state=False)
    process, client = _start(folder / 'cold', path, kv_state_max_bytes=0)
    try:
        assert client.history().cache_tokens == 0
        turn, cold = client.ask(QUESTION, timeout=120.0)
        assert _input_tokens(client, turn.turn_id) > cached
        saved['cold'] = cold
    finally:
        stop_node(process, client)
    # kv_state_max_bytes 0: no state file at all
    assert not os.path.exists(cache_file.state_path(str(path)))


def _truncated(data):
    return data[:len(data) // 2]


def _altered(data):
    middle = len(data) - 1000
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


BAD_STATES = [
    ('truncated', _truncated, 'cut short'),
    ('altered', _altered, 'cut short or altered'),
    ('garbage', lambda data: b'\x00' * 64, 'not a KV state file'),
    ('another chat', None, "tokens are not the chat's"),
]


def test_a_bad_state_file_is_ignored_with_the_reason(saved):
    folder, path, cached = _put_back(saved)
    kv = cache_file.state_path(str(path))
    good = (folder / 'kv.saved').read_bytes()
    process, client = _start(folder / 'bad', path, activate=False)
    try:
        reference = saved.get('cold')  # the cold prefill's reply, when that test ran
        for i, (kind, damage, reason) in enumerate(BAD_STATES):
            if i:
                assert client.transition('deactivate') and client.transition('cleanup')
            shutil.copy(folder / 'chat.saved', path)  # cleanup saved this chat's state
            if damage is None:
                # a state saved for a longer chat (cleanup's): its tokens are not this chat's
                assert os.path.getsize(kv) != len(good)
            else:
                with open(kv, 'wb') as f:
                    f.write(damage(good))
            start = len(process.log())
            assert client.transition('configure') and client.transition('activate')
            client.wait_connected()
            line, = grep(process, r'KV state ignored', start)
            assert re.search(reason, line), (kind, line)
            assert client.history().cache_tokens == 0, kind  # never a wrong state
            turn, answer = client.ask(QUESTION, timeout=120.0)
            assert _input_tokens(client, turn.turn_id) > cached, kind  # prefilled again
            reference = reference or answer
            assert answer == reference, kind  # the reply is still right
    finally:
        stop_node(process, client)
    assert process.process.returncode == 0

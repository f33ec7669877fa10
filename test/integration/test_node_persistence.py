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
The node's ``history_file`` over real DDS: a chat that survives ``kill -9``, and bad files.

The installed node runs a tiny random-weight Llama (greedy) in its own process; expected
replies come from the library in this process on the same model.
"""

import glob
import json
import os
import re
import time

from chat_helpers import chat
from node_harness import grep, reference_replies, start_node, stop_node
import pytest
from ros2_nano_llm.chat import storage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPTS = ['My name is Ada.', 'I live in Lisbon.', 'I build robots.']
QUESTION = 'What is my name?'
LONG = 2000  # max_new_tokens for a reply that only ends when it is killed


def _saved_turn(path, turn_id, timeout=30.0):
    """Wait until the file holds turn ``turn_id`` (it is written just after each reply)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            doc = storage.read(path)
            if doc['extra'].get('turn_id') == turn_id:
                return doc
        except (FileNotFoundError, storage.HistoryFileError):
            pass
        time.sleep(0.05)
    raise AssertionError(f'{path} did not hold turn {turn_id} within {timeout} s')


def _first_piece(client, after, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(i > after and t.pieces for i, t in list(client.turns.items())):
            return
        time.sleep(0.005)
    raise AssertionError('no reply started')


def test_chat_survives_kill_9_during_a_reply(tiny_model_dir, tiny_llama, tmp_path):
    path = tmp_path / 'chat.json'
    overrides = {'model': tiny_model_dir('llama'), 'history_file': str(path)}
    (tmp_path / 'first').mkdir()
    (tmp_path / 'second').mkdir()
    process, client = start_node(tmp_path / 'first', overrides)
    try:
        replies = [client.ask(prompt)[1] for prompt in PROMPTS]
        three_turns = client.history_texts()
        _saved_turn(path, 3)
        assert client.set_params(max_new_tokens=LONG)[0].successful
        mark = client.mark()
        client.publish('Tell me a very long story.')
        _first_piece(client, mark['turn'])
        process.process.kill()  # SIGKILL, mid-reply
        assert process.process.wait(10) == -9
        client_turns = set(client.turns)
    finally:
        stop_node(process, client)

    process, client = start_node(tmp_path / 'second', overrides)
    try:
        assert client.history_texts() == three_turns  # the three turns whole, nothing of the 4th
        assert [e[0] for e in three_turns[-6:]] == ['user', 'bot'] * 3
        assert three_turns[-1] == ('bot', 'text', replies[-1])
        assert grep(process, r"chat restored from '.*chat.json': "
                    f'{len(three_turns)} entries, last turn 3')
        turn, answer = client.ask(QUESTION)
        # turn ids go on after the restart, and never again give the id of turn 4, which
        # streamed before the kill (issue 21 item 8)
        assert turn.turn_id == 5 and 4 in client_turns
        # the reply is generated after the three turns: exactly the library's reply to them
        assert [*replies, answer] == reference_replies(tiny_llama, [*PROMPTS, QUESTION])
        assert answer != reference_replies(tiny_llama, [QUESTION])[0]
        doc = _saved_turn(path, 5)
        assert [e['text'] for e in doc['entries'][-2:]] == [QUESTION, answer]
        # a reset is saved as well
        assert client.call('reset').success
        deadline = time.monotonic() + 10.0
        while len(storage.read(path)['entries']) != 1:
            assert time.monotonic() < deadline, storage.read(path)['entries']
            time.sleep(0.05)
    finally:
        stop_node(process, client)
    assert process.process.returncode == 0
    assert not glob.glob(str(path) + '.corrupt-*')


def _bad_files(model, tmp_path):
    valid = tmp_path / 'valid.json'
    history, _ = chat(model, 2)
    history.save(valid, extra={'turn_id': 2})
    data = valid.read_bytes()
    doc = json.loads(data)
    other = dict(doc, model=dict(doc['model'], name='SmolLM2-135M-Instruct'))
    return [
        ('corrupt', b'\x00\xff\xfe{{garbage', r'not (UTF-8 text|valid JSON)'),
        ('truncated', data[:len(data) // 2], r'not valid JSON \(truncated or corrupt\)'),
        ('empty', b'', 'the file is empty'),
        ('other-model', json.dumps(other).encode(),
         "written for model 'SmolLM2-135M-Instruct'"),
    ]


def test_bad_files_are_moved_aside_and_a_new_chat_starts(tiny_model_dir, tiny_llama, tmp_path):
    cases = _bad_files(tiny_llama, tmp_path)
    first = tmp_path / f'{cases[0][0]}.json'
    process, client = start_node(tmp_path, {'model': tiny_model_dir('llama'),
                                            'history_file': str(first)}, activate=False)
    try:
        for i, (kind, data, reason) in enumerate(cases):
            path = tmp_path / f'{kind}.json'
            path.write_bytes(data)
            if i:
                assert client.transition('deactivate') and client.transition('cleanup')
                assert client.set_params(history_file=str(path))[0].successful
            mark, log_start = client.mark(), len(process.log())
            assert client.transition('configure'), process.log()[-3000:]
            assert client.transition('activate')
            client.wait_connected()
            # the node is up with a new chat; the bad file moved aside, bytes untouched
            assert [e[0] for e in client.history_texts()] == ['system'], kind
            moved = glob.glob(str(path) + '.corrupt-*')
            assert len(moved) == 1 and open(moved[0], 'rb').read() == data, kind
            assert not path.exists()
            # the log and /diagnostics say why
            line, = grep(process, 'moved aside to ' + os.path.basename(moved[0]), log_start)
            assert f"chat file '{path}'" in line and re.search(reason, line), line
            diag = client.wait_diagnostics(
                lambda v: 'moved aside' in v.get('history_status', ''), after=mark['diagnostics'])
            assert diag['history_file'] == str(path)
            # the new chat is saved in the file's place; the moved file stays
            # (turn ids go on for the life of the process: this is its (i + 1)th turn)
            replies = client.mark()['replies']
            client.publish('Hello again.')
            client.wait_replies(replies)
            assert _saved_turn(path, i + 1)['entries'][-2]['text'] == 'Hello again.'
            assert open(moved[0], 'rb').read() == data
        # a path that cannot be read is no bad file: configure fails, saying why; nothing moves
        assert client.transition('deactivate') and client.transition('cleanup')
        assert client.set_params(history_file=str(tmp_path))[0].successful
        log_start = len(process.log())
        assert not client.transition('configure')
        assert grep(process, re.escape(f"history_file '{tmp_path}' cannot be used") +
                    '.*Is a directory', log_start)
        assert client.state() == 'unconfigured' and tmp_path.is_dir()
    finally:
        stop_node(process, client)
    assert process.process.returncode == 0

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
kill -9 right after a reply is acknowledged loses no turn (issue 21 item 8), over real DDS.

The client kills the node inside its ``~/output/reply`` callback, the earliest moment a
client can act on a reply, then starts it again on the same ``history_file``, KILLS times.
Every acknowledged reply must be in the restarted node's chat, in order, and no turn id a
client has seen is ever given again. The embedded SmolLM2 on llama.cpp (it loads in about
two seconds) with 4-token greedy replies keeps each round short.
"""

import os
import signal
import threading

from node_harness import NodeClient, NodeProcess, wait_for_state
import pytest
from ros2_nano_llm.chat import storage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 30


class KillingClient(NodeClient):
    """A client that kills the node (SIGKILL) in its ``~/output/reply`` callback."""

    def __init__(self, target, pid):
        self.pid = pid
        self.killed = threading.Event()
        super().__init__(target)

    def _on_reply(self, msg):
        if not self.killed.is_set():
            os.kill(self.pid, signal.SIGKILL)  # before anything else: the reply is acknowledged
            self.killed.set()
        super()._on_reply(msg)


def _start(tmp_path, round_, overrides):
    process = NodeProcess(tmp_path / f'node-{round_}.log', overrides=overrides)
    client = KillingClient(process.fqn, process.process.pid)
    try:
        wait_for_state(client, process, 'active', timeout=120.0)
        client.wait_connected()
    except BaseException:
        client.close()
        process.stop()
        raise
    return process, client


def _bot_texts(client):
    return [text for role, kind, text in client.history_texts() if role == 'bot']


def test_no_acknowledged_turn_is_lost_to_kill_9(tmp_path):
    pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed')
    path = tmp_path / 'chat.json'
    overrides = {'model': 'default', 'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048,
                 'history_file': str(path), 'max_new_tokens': 4, 'autostart': True,
                 'kv_state_max_bytes': 0}
    acknowledged, seen_ids = [], set()
    for round_ in range(KILLS + 1):
        process, client = _start(tmp_path, round_, overrides)
        try:
            # every reply a client saw before a kill is in the chat, in order
            assert _bot_texts(client) == acknowledged, f'round {round_}: turns lost'
            if round_ == KILLS:
                break
            mark = client.mark()
            # a /diagnostics message from this node: it has discovered the client (a reply
            # published before its writer matches the client's reader would never arrive)
            client.wait_diagnostics(lambda values: True, after=mark['diagnostics'])
            client.publish(f'Number {round_}.')
            assert client.killed.wait(180.0), process.log()[-3000:]
            assert process.process.wait(10) == -signal.SIGKILL
            acknowledged.append(client.wait_replies(mark['replies'])[0])
            ids = {i for i, turn in client.turns.items() if turn.pieces or turn.eos}
            # no turn id seen before the restarts is given again
            assert not ids & seen_ids, (round_, sorted(ids), sorted(seen_ids))
            seen_ids |= ids
        finally:
            client.close()
            process.stop()
    assert process.process.returncode == 0
    saved = storage.read(path)['extra']['turn_id']
    assert saved == max(seen_ids) and len(acknowledged) == KILLS

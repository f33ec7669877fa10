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
The embedded SmolLM2 behind the node, started with the shipped config/nano_llm.yaml.

That file sets ``autostart: true``: the node configures and activates itself. Over DDS, a
name told in the first turn comes back in the second; after ``~/reset`` it is gone.
"""

from node_harness import REPO_ROOT, start_node, stop_node
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = 'Zorblax'


@pytest.fixture(scope='module')
def smollm2_node(tmp_path_factory):
    """Start the node as `ros2 run ... --params-file config/nano_llm.yaml` does."""
    process, client = start_node(
        tmp_path_factory.mktemp('node_smollm2'), {'max_new_tokens': 32},
        params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
    yield process, client
    stop_node(process, client)


def test_autostart_configures_and_activates(smollm2_node):
    process, client = smollm2_node
    assert client.state() == 'active'
    process.wait_for_log('autostart: configure and activate')
    process.wait_for_log(r"configured: 'SmolLM2-135M-Instruct\S*' in [\d.]+ s")
    assert client.get_param('model') == 'default'


def test_smollm2_remembers_a_name_and_reset_forgets_it(smollm2_node):
    process, client = smollm2_node
    turn, reply = client.ask(f'Hi! My name is {NAME} and I live in Paris.', timeout=120.0)
    assert turn.text == reply and len(turn.eos) == 1
    _, reply = client.ask('What is my name?', timeout=120.0)
    assert NAME in reply, reply
    assert [e[0] for e in client.history_texts()] == ['system', 'user', 'bot', 'user', 'bot']
    assert client.call('reset').success
    _, reply = client.ask('What is my name?', timeout=120.0)
    assert NAME not in reply, reply

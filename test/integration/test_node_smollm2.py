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
from rclpy.parameter import parameter_dict_from_yaml_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = 'Zorblax'
SHIPPED_YAML = REPO_ROOT / 'config' / 'nano_llm.yaml'


@pytest.fixture(scope='module')
def smollm2_node(tmp_path_factory):
    """Start the node as `ros2 run ... --params-file config/nano_llm.yaml` does."""
    process, client = start_node(
        tmp_path_factory.mktemp('node_smollm2'), {'max_new_tokens': 32},
        params_file=SHIPPED_YAML, first_state='active')
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


def test_newest_reply_shows_cached_when_the_cache_holds_it(smollm2_node):
    """Issue 12 item 10: a reply that ended by itself (eos) is all in the KV cache."""
    process, client = smollm2_node
    assert client.call('reset').success
    mark = client.mark()
    turn, reply = client.ask('Say hello.', timeout=120.0)
    diag = client.wait_diagnostics(lambda v: v['stats_turn_id'] == str(turn.turn_id),
                                   after=mark['diagnostics'])
    assert int(diag['output_tokens']) < 32, 'the reply did not end by itself (eos)'
    entries = client.history().entries
    assert [(e.role, e.cached) for e in entries] == [('system', True), ('user', True),
                                                     ('bot', True)]


def test_param_load_of_the_shipped_yaml_on_the_active_node(smollm2_node):
    """Issue 12 item 7: what `ros2 param load /nano_llm config/nano_llm.yaml` sends."""
    process, client = smollm2_node
    loaded = parameter_dict_from_yaml_file(str(SHIPPED_YAML), use_wildcard=True)
    assert loaded['builtin_functions'].value.type != 9  # [] does not load as a string array
    request = client.clients['set_parameters'].srv_type.Request()
    request.parameters = list(loaded.values())
    try:
        results = client.call('set_parameters', request).results
        refused = {p.name: r.reason for p, r in zip(request.parameters, results)
                   if not r.successful}
        assert refused == {}
        assert client.get_param('builtin_functions') in ([], ())
        assert client.state() == 'active'
        # a different value of a reload-only parameter is still refused while active
        result, = client.set_params(max_context_len=512)
        assert not result.successful and 'deactivate and clean up' in result.reason
    finally:
        assert client.set_params(max_new_tokens=32)[0].successful
    _, reply = client.ask('Hello again.', timeout=120.0)
    assert reply

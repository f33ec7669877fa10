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
The node on the llama.cpp backend (api:=llama_cpp with its n_threads/n_ctx parameters).

Same chat over DDS as on hf: the reply streams, and a second turn reuses the first's cache.
"""

from node_harness import REPO_ROOT, start_node, stop_node
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope='module')
def llama_node(tmp_path_factory):
    """Start the node with the shipped config, switched to api llama_cpp."""
    process, client = start_node(
        tmp_path_factory.mktemp('node_llama_cpp'),
        {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048, 'max_new_tokens': 24},
        params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
    yield process, client
    stop_node(process, client)


def test_llama_cpp_node_streams_and_keeps_the_chat(llama_node):
    process, client = llama_node
    assert client.get_param('api') == 'llama_cpp' and client.get_param('n_ctx') == 2048
    turn, reply = client.ask('What is a robot? Answer in one sentence.', timeout=120.0)
    assert reply and turn.text == reply and len(turn.eos) == 1
    first = client.history()
    _, second = client.ask('Say it again, shorter.', timeout=120.0)
    assert second
    history = client.history()
    assert [e.role for e in history.entries] == ['system', 'user', 'bot', 'user', 'bot']
    assert history.context_len == 2048
    assert history.cache_tokens > first.cache_tokens

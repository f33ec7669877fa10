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
The nano_llm node's lifecycle, driven through its standard ~/change_state and ~/get_state.

One node process walks the whole state machine in order: a configure that fails on a bad
model path (FAILURE, the reason logged, the node still up), configure again after fixing the
parameter, activate, deactivate (quiet, chat kept), activate again, cleanup, configure
again (turn ids go on increasing) and shutdown, after which the process exits with code 0.
"""

from node_harness import grep, start_node, stop_node
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BAD_MODEL = '/nonexistent/models/nano'


@pytest.fixture(scope='module')
def unconfigured(tiny_model_dir, tmp_path_factory):
    """Start a node (not configured) whose model parameter names a missing directory."""
    tiny_model_dir('llama')  # built before the node starts, so configure can use it later
    process, client = start_node(tmp_path_factory.mktemp('node_lifecycle'),
                                 {'model': BAD_MODEL}, activate=False)
    yield process, client
    stop_node(process, client)


def test_lifecycle_in_order(unconfigured, tiny_model_dir):
    process, client = unconfigured
    assert client.state() == 'unconfigured'

    # configure fails on the bad model: FAILURE, the reason in the log and in /diagnostics
    mark = client.mark()
    assert client.transition('configure') is False
    assert client.state() == 'unconfigured' and process.alive
    process.wait_for_log(r'configure failed: FileNotFoundError: model path not found: '
                         + BAD_MODEL)
    diag = client.wait_diagnostics(lambda v: v['state'] == 'unconfigured',
                                   after=mark['diagnostics'])
    assert diag['model'] == BAD_MODEL
    level, message, _ = client.diagnostics[-1]
    assert level == b'\x02' and 'configure failed' in message

    # fixing the parameter is allowed while unconfigured; configure then succeeds
    assert client.set_params(model=tiny_model_dir('llama'))[0].successful
    assert client.transition('configure') is True
    assert client.state() == 'inactive'
    process.wait_for_log(r"configured: '\S+' in [\d.]+ s, context 4096 tokens")

    # a model is loaded: parameters that need a reload are refused while inactive too
    result, = client.set_params(model='default')
    assert not result.successful and 'inactive' in result.reason
    assert client.transition('configure') is False  # already configured

    assert client.transition('activate') is True
    assert client.state() == 'active'
    client.wait_connected()
    first_turn, reply = client.ask('Hello, lifecycle.')
    chat = client.history_texts()
    assert chat[-2:] == [('user', 'text', 'Hello, lifecycle.'), ('bot', 'text', reply)]

    # deactivate: quiet (prompts are not taken), the chat is kept for the next activate
    assert client.transition('deactivate') is True
    assert client.state() == 'inactive'
    mark = client.mark()
    client.publish('Are you listening?')
    assert client.no_new_turn(mark['turn'], 1.0)
    assert client.transition('activate') is True
    client.wait_connected()
    assert client.history_texts() == chat
    _, reply2 = client.ask('Back again.')
    assert client.history_texts() == chat + [('user', 'text', 'Back again.'),
                                             ('bot', 'text', reply2)]

    # cleanup is not a transition from active; deactivate first, then it frees the model
    assert client.transition('cleanup') is False
    assert client.transition('deactivate') is True
    assert client.transition('cleanup') is True
    assert client.state() == 'unconfigured'
    process.wait_for_log('cleaned up: model freed')
    mark = client.mark()
    diag = client.wait_diagnostics(lambda v: v['state'] == 'unconfigured',
                                   after=mark['diagnostics'])
    assert diag['cache_tokens'] == '0' and diag['chat_entries'] == '0'

    # configure works again from here (the model loads anew); turn ids go on increasing,
    # so clients keyed on them never mistake a new reply for an old one (issue 11 item 9)
    assert client.transition('configure') is True
    assert client.transition('activate') is True
    client.wait_connected()
    turn, _ = client.ask('A new chat.')
    assert turn.turn_id > first_turn.turn_id + 1, (turn.turn_id, first_turn.turn_id)
    assert client.transition('deactivate') is True

    # shutdown from inactive: finalized, then the process exits by itself with code 0
    # (issue 12 item 4), so launch's exit handling sees it
    assert client.transition('inactive_shutdown') is True
    assert process.process.wait(30.0) == 0
    process.wait_for_log('shut down')
    assert not grep(process, 'Traceback')
    # no progress bars in the log (issue 12 item 9): two configures loaded a model
    assert len(grep(process, r'configured: ')) == 2
    assert not grep(process, r'\d+%\|'), grep(process, r'\d+%\|')

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
Approving and denying robot calls from the web page, with the simulated robot.

The chat node (embedded SmolLM2, llama.cpp, ``tool_choice: fibonacci``, one call a turn) has
one robot function, the sim robot's Fibonacci action, marked ``confirm: true``. Each prompt
makes a pending call (``~/output/pending_calls``); the page shows it with Approve and Deny, and
the click goes to ``~/approve_call``. The approved call reaches the sim robot (its events say
so) and ends on the page; the denied one never reaches it and shows as refused.
"""

import json
import threading

from node_harness import NodeProcess, REPO_ROOT, start_node
import pytest
from ros2_nano_llm.ros.sim_robot import EVENTS_QOS
from ros2_nano_llm.srv import ApproveCall
from std_msgs.msg import String
from web_pages import Browser, chromium_problem, close_all, WebNode

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(bool(chromium_problem()), reason=chromium_problem())]

TOKEN = 'approval-test-token'
FUNCTIONS = """\
- name: fibonacci
  description: Compute a Fibonacci sequence on the robot, step by step.
  args:
    - {name: order, type: int, min: 3, max: 6, description: how many numbers}
  action: /fibonacci
  type: test_msgs/action/Fibonacci
  timeout: 30.0
  confirm: true
"""


@pytest.fixture(scope='module')
def robot(tmp_path_factory):
    """Start the sim robot, the chat node with its confirm function, the web node, a browser."""
    pytest.importorskip('llama_cpp', reason='the embedded model runs on llama-cpp-python')
    tmp = tmp_path_factory.mktemp('web_approval')
    (tmp / 'functions.yaml').write_text(FUNCTIONS)
    sim = NodeProcess(tmp / 'sim_robot.log', name='sim_robot', params_file=None,
                      executable='nano_llm_sim_robot', overrides={'step_period_s': 0.05})
    process = client = web = browser = None
    try:
        sim.wait_for_log('sim robot ready')
        process, client = start_node(
            tmp, {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048, 'max_new_tokens': 32,
                  'functions_file': str(tmp / 'functions.yaml'), 'tool_choice': 'fibonacci',
                  'approval_timeout': 60.0, 'max_calls_per_turn': 1},
            params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
        assert client.node.create_client(ApproveCall, '/nano_llm/approve_call'
                                         ).wait_for_service(timeout_sec=10.0)
        goals, cond = [], threading.Condition()

        def on_event(msg):
            event = json.loads(msg.data)
            if event.get('event') == 'goal':
                with cond:
                    goals.append(event)
                    cond.notify_all()
        client.node.create_subscription(String, '/sim_robot/events', on_event, EVENTS_QOS)
        web = WebNode(tmp / 'web.log', '/nano_llm', token=TOKEN)
        browser = Browser()
        yield {'client': client, 'web': web, 'browser': browser, 'goals': goals}
    finally:
        close_all(browser, web, process, client)
        sim.stop()


def test_approve_one_call_and_deny_another(robot):
    view = robot['browser'].page(robot['web'].url, TOKEN)
    goals = robot['goals']
    pending = ("[...document.querySelectorAll('#calls li.pending')]"
               ".filter(li => li.querySelectorAll('button').length === 2).length")

    view.prompt('Count the Fibonacci numbers for me.')
    view.wait(pending, timeout=120.0, what='a pending call with Approve and Deny')
    assert not goals  # nothing reached the robot before the decision
    call_id = view.calls()[0]['id']
    view.page.click(f'#calls li[data-call-id="{call_id}"] button.approve')
    view.wait(f"document.querySelector('#calls li[data-call-id=\"{call_id}\"].ended')",
              timeout=120.0, what='the approved call to end')
    assert len(goals) == 1
    view.wait('window.nanoLLM.lastResult', timeout=120.0, what='the first reply to end')

    view.page.evaluate('() => { window.nanoLLM.lastResult = null; }')
    view.prompt('Count them once more.')
    view.wait(pending, timeout=120.0, what='the second pending call')
    second = [c for c in view.calls() if c['cls'] == 'pending'][0]['id']
    assert second != call_id
    view.page.click(f'#calls li[data-call-id="{second}"] button.deny')
    view.wait(f"document.querySelector('#calls li[data-call-id=\"{second}\"].refused')",
              timeout=120.0, what='the denied call to show as refused')
    status = [c for c in view.calls() if c['id'] == second][0]['status']
    assert 'denied' in status, status
    view.wait('window.nanoLLM.lastResult', timeout=120.0, what='the second reply to end')
    assert len(goals) == 1  # the denied call never reached the robot
    view.page.close()

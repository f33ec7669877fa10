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
The operator's web page in headless Chromium, against a live chat node over real DDS.

The chat node runs the embedded SmolLM2 on llama.cpp; ``nano_llm_web`` serves its page; the
browser is Debian's Chromium driven by Playwright. What the page shows is checked against
what the chat node publishes (``~/output/reply``) and serves (``~/get_history``), read by
this process's own rclpy client.
"""

import io
import time

from node_harness import REPO_ROOT, start_node, stop_node
from PIL import Image as PILImage
import pytest
from sensor_msgs.msg import Image
from web_pages import Browser, chromium_problem, WebNode

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(bool(chromium_problem()), reason=chromium_problem())]

TOKEN = 'web-test-token'
CHAT = {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048, 'max_new_tokens': 32}


@pytest.fixture(scope='module')
def chat(tmp_path_factory):
    """Start the chat node (embedded model, llama.cpp) and this process's client."""
    pytest.importorskip('llama_cpp', reason='the embedded model runs on llama-cpp-python')
    tmp = tmp_path_factory.mktemp('web_chat')
    process, client = start_node(tmp, CHAT, params_file=REPO_ROOT / 'config' / 'nano_llm.yaml',
                                 first_state='active')
    holder = {'process': process, 'client': client, 'tmp': tmp}
    yield holder
    stop_node(holder['process'], holder['client'])


@pytest.fixture(scope='module')
def web(tmp_path_factory, chat):
    """Start the web node for /nano_llm, with a known token."""
    node = WebNode(tmp_path_factory.mktemp('web') / 'web.log', '/nano_llm', token=TOKEN)
    yield node
    assert node.stop() == 0, node.process.log()[-2000:]


@pytest.fixture(scope='module')
def browser():
    """Start headless Chromium (Debian's), through Playwright."""
    b = Browser()
    yield b
    b.close()


def reply_seen(client, mark, timeout=120.0):
    """Return the next ~/output/reply text after ``mark``."""
    return client.wait_replies(mark['replies'], 1, timeout)[0]


def record_live_text(view):
    """Make the page keep every state of the streaming reply row (a MutationObserver)."""
    view.page.evaluate("""() => {
        window.liveStates = [];
        new MutationObserver(() => {
            const live = document.querySelector('#live .text');
            if (live) window.liveStates.push(live.textContent);
        }).observe(document.getElementById('transcript'),
                   {childList: true, subtree: true, characterData: true});
    }""")


def test_prompt_streams_in_and_matches_the_reply(chat, web, browser):
    client = chat['client']
    view = browser.page(web.url, TOKEN)
    record_live_text(view)
    mark = client.mark()
    view.prompt('Name three colours.')
    reply = reply_seen(client, mark)
    view.wait('window.nanoLLM.lastResult', what='the goal result')
    states = [s for s in view.page.evaluate('() => window.liveStates') if s]
    # it streamed: the row grew through several partial texts, each a prefix of the reply
    assert len(set(states)) >= 3, states
    assert all(reply.startswith(s) for s in states), (states, reply)
    assert states[-1] == reply
    # after the turn the transcript is the chat node's history, this reply last
    view.wait_bot_text(reply, 'the reply in the transcript')
    history = client.history().entries
    assert [(r['role'], r['text']) for r in view.transcript()] == \
        [(e.role, e.text) for e in history]
    assert history[-1].role == 'bot' and history[-1].text.strip() == reply.strip()
    view.page.close()


def test_two_pages_see_the_same_turn(chat, web, browser):
    client = chat['client']
    first, second = browser.page(web.url, TOKEN), browser.page(web.url)  # one read-only
    mark = client.mark()
    first.prompt('Say hello to the robot.')
    reply = reply_seen(client, mark)
    for view in (first, second):
        view.wait_bot_text(reply, 'the reply on both pages')
        view.wait("[...document.querySelectorAll('#transcript li.user .text')].some("
                  "e => e.textContent === 'Say hello to the robot.')", what='the prompt')
    assert first.transcript() == second.transcript()
    first.page.close()
    second.page.close()


def test_stop_mid_reply_keeps_the_partial_reply(chat, web, browser):
    client = chat['client']
    assert client.set_params(max_new_tokens=400)[0].successful
    try:
        view = browser.page(web.url, TOKEN)
        mark = client.mark()
        view.prompt('Write a long story about a robot that learns to paint.')
        view.wait("document.querySelector('#live .text') && "
                  "document.querySelector('#live .text').textContent.length > 20",
                  what='the reply to start streaming')
        view.page.click('#stop')
        result = view.wait('window.nanoLLM.lastResult && window.nanoLLM.lastResult.stop_reason',
                           what='the goal result')
        assert result == 'stopped'
        turn, = client.wait_turn_end(mark['turn'], 60.0)
        assert 0 < len(turn.pieces) < 400
        partial = turn.text
        history = client.history().entries
        assert history[-1].role == 'bot' and history[-1].text.strip() == partial.strip()
        view.wait_bot_text(history[-1].text, 'the partial reply in the transcript')
        view.page.close()
    finally:
        client.set_params(max_new_tokens=CHAT['max_new_tokens'])


def test_markup_in_a_reply_is_text_and_runs_nothing(chat, web, browser):
    client = chat['client']
    view = browser.page(web.url, TOKEN)
    payload = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    assert client.set_params(reply_prefix=payload)[0].successful
    try:
        mark = client.mark()
        view.prompt(f'Repeat exactly: {payload}')
        reply = reply_seen(client, mark)
        assert reply.startswith(payload)
        view.wait_bot_text(payload, 'the markup as text', prefix=True)
        time.sleep(0.5)  # an onerror handler would have run by now
        assert view.page.evaluate('() => window.pwned') is None
        assert view.page.evaluate("() => document.querySelectorAll('#transcript img, "
                                  "#transcript script').length") == 0
        # the user's own text too
        assert any(r['role'] == 'user' and payload in r['text'] for r in view.transcript())
        assert not browser.dialogs
    finally:
        client.set_params(reply_prefix='')
        view.page.close()


def test_without_the_token_sending_is_refused(chat, web, browser):
    client = chat['client']
    view = browser.page(web.url)
    assert view.page.is_disabled('#send') and view.page.is_disabled('#reset')
    mark = client.mark()
    # the buttons are off; a page that sends anyway is refused by the server
    view.page.evaluate("() => { ws.send(JSON.stringify({op: 'prompt', text: 'hi', id: 1})); }")
    view.wait("document.getElementById('error').textContent.includes('read-only')",
              what='the refusal')
    # a wrong token is refused, and sending stays refused
    view.page.fill('#token', 'wrong')
    view.page.click('#token-send')
    view.wait("document.getElementById('error').textContent.includes('wrong token')")
    assert client.no_new_turn(mark['turn'], 1.0)
    view.page.close()


def test_bad_messages_get_a_clear_error_and_the_page_stays(chat, web, browser):
    view = browser.page(web.url, TOKEN)
    send = '(m) => ws.send(m)'
    error = "window.nanoLLM.errors.some(e => e.startsWith('{}'))"
    view.page.evaluate(send, 'not json')
    view.wait(error.format('not JSON'))
    view.page.evaluate(send, '{"op": "prompt", "text": "' + 'x' * 9000 + '"}')
    view.wait(error.format('message too large'))
    view.page.evaluate(send, '{"op": "decide", "call_id": 7, "approve": true}')
    view.wait(error.format('decide: call_id must be a str'))
    for _ in range(30):
        view.page.evaluate(send, '{"op": "history"}')
    view.wait(error.format('rate limit'))
    # the connection stayed, and a well-formed request is answered again
    assert view.page.evaluate('() => window.nanoLLM.connected') is True
    assert view.page.evaluate('() => window.nanoLLM.events') > 0
    view.page.close()


def test_camera_frames_compressed_shown_too_large_refused(chat, web, browser):
    client = chat['client']
    view = browser.page(web.url)
    out = io.BytesIO()
    PILImage.new('RGB', (800, 600), (20, 160, 90)).save(out, format='JPEG')
    deadline = time.monotonic() + 60.0
    shown = "() => document.getElementById('frame').naturalWidth === 320"
    while not view.page.evaluate(shown):  # scaled to 240 px on the shorter side
        assert time.monotonic() < deadline, 'the compressed frame never showed'
        client.publish_compressed(out.getvalue())
        time.sleep(0.25)
    seq = view.page.evaluate("() => document.getElementById('frame').src")
    # a frame that declares 5000 px is not decoded, not shown, and the web node goes on
    huge = Image(height=5000, width=5000, encoding='rgb8', step=15000, data=b'\0' * 16)
    for _ in range(8):
        client.image_pub.publish(huge)
        time.sleep(0.3)
    web.process.wait_for_log('camera frame not shown: the frame is 5000x5000 pixels')
    assert view.page.evaluate("() => document.getElementById('frame').src") == seq
    assert web.process.alive
    view.page.close()


def test_reset_clears_the_chat_on_the_page(chat, web, browser):
    client = chat['client']
    view = browser.page(web.url, TOKEN)
    if len(client.history().entries) < 2:
        client.ask('Hello.', timeout=120.0)
    view.wait("document.querySelectorAll('#transcript li.bot').length > 0")
    view.page.click('#reset')
    view.wait("document.querySelectorAll('#transcript li.bot, #transcript li.user')"
              '.length === 0', what='the transcript to clear')
    assert [e.role for e in client.history().entries] in (['system'], [])
    view.page.close()


def test_the_page_says_when_the_chat_node_is_not_active(chat, web, browser):
    client = chat['client']
    view = browser.page(web.url, TOKEN)
    assert view.page.is_hidden('#banner') and not view.page.is_disabled('#send')
    assert client.transition('deactivate')
    try:
        view.wait("document.getElementById('node-state').textContent === 'inactive'",
                  what='the page to show the inactive state')
        assert 'not active' in view.page.text_content('#banner')
        assert view.page.is_disabled('#send')
    finally:
        assert client.transition('activate')
    view.wait("!document.getElementById('send').disabled", what='the page to allow sending')
    view.page.close()


def test_the_page_recovers_when_the_chat_node_restarts(chat, web, browser):
    client, process = chat['client'], chat['process']
    view = browser.page(web.url, TOKEN)
    stop_node(process, client)
    view.wait("document.getElementById('node-state').textContent === 'unreachable'",
              what='the page to say the chat node is gone')
    assert not view.page.is_hidden('#banner')
    process, client = start_node(chat['tmp'], CHAT, name='nano_llm',
                                 params_file=REPO_ROOT / 'config' / 'nano_llm.yaml',
                                 first_state='active')
    chat['process'], chat['client'] = process, client
    view.wait("document.getElementById('node-state').textContent === 'active'", timeout=120.0,
              what='the page to see the chat node again')
    mark = client.mark()
    view.prompt('Are you back?')
    reply = reply_seen(client, mark)
    view.wait_bot_text(reply, 'the reply after the restart')
    view.page.close()

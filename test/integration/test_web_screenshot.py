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
The README's picture of the web page, taken by this test: mid-reply, a camera frame, a call.

The chat node (embedded SmolLM2 on llama.cpp) has config/functions.yaml with
``tool_choice: set_headlights``, served by a pretend robot in this process, so each reply
starts with a real robot call; a camera frame is published on its ``~/input/image``. The
screenshot is taken while the reply streams, and saved to docs/web_page.png.
"""

import time

from node_harness import PretendRobot, REPO_ROOT, start_node
import numpy as np
import pytest
from web_pages import Browser, chromium_problem, close_all, WebNode

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(bool(chromium_problem()), reason=chromium_problem())]

SCREENSHOT = REPO_ROOT / 'docs' / 'web_page.png'
TOKEN = 'screenshot-token'


def camera_frame(width=640, height=480):
    """Return an (H, W, 3) uint8 picture: sky, floor, and a box on the floor."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:height // 2] = (110, 150, 220)
    rgb[height // 2:] = (90, 80, 70)
    rgb[260:400, 250:390] = (200, 60, 40)   # the box
    rgb[270:290, 260:380] = (240, 200, 60)  # its label
    return rgb


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Start a pretend robot, the chat node with its functions, the web node, a browser."""
    pytest.importorskip('llama_cpp', reason='the embedded model runs on llama-cpp-python')
    tmp = tmp_path_factory.mktemp('web_screenshot')
    robot = PretendRobot('web_robot', '/robot')
    process = client = web = browser = None
    try:
        process, client = start_node(
            tmp, {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048, 'max_new_tokens': 160,
                  'functions_file': str(REPO_ROOT / 'config' / 'functions.yaml'),
                  'tool_choice': 'set_headlights'},
            params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
        web = WebNode(tmp / 'web.log', '/nano_llm', token=TOKEN)
        browser = Browser()
        yield robot, client, web, browser
    finally:
        close_all(browser, web, process, client)
        robot.close()


def test_screenshot_mid_reply_with_a_frame_and_a_call(setup):
    robot, client, web, browser = setup
    view = browser.page(web.url, TOKEN)
    frame, shown = camera_frame(), "() => document.getElementById('frame').naturalWidth > 0"
    deadline = time.monotonic() + 60.0
    while not view.page.evaluate(shown):  # a camera publishes all the time: so does this
        assert time.monotonic() < deadline, 'the camera frame never showed on the page'
        client.publish_image(frame)
        time.sleep(0.25)
    assert view.page.evaluate("() => document.getElementById('frame').naturalWidth") == 320
    mark = robot.count()
    view.prompt('It is dark here. Turn the headlights on, then tell me what you see.')
    view.wait("document.querySelectorAll('#calls li').length > 0", timeout=180.0,
              what='the robot call on the page')
    # mid-reply: some of the reply's own text after the call's result, the reply not ended
    view.wait("(() => { const t = document.querySelector('#live .text'); if (!t) return false; "
              "const s = t.textContent, end = s.indexOf('headlights on'); "
              'return end >= 0 && s.length > end + 40 && !window.nanoLLM.lastResult; })()',
              timeout=180.0, what='the reply mid-stream')
    SCREENSHOT.parent.mkdir(exist_ok=True)
    view.page.screenshot(path=str(SCREENSHOT))
    calls = view.calls()
    assert calls[0]['call'].startswith('set_headlights(')
    assert [r[0] for r in robot.since(mark)][:1] == ['set_headlights']
    assert SCREENSHOT.stat().st_size > 10000
    view.wait('window.nanoLLM.lastResult', timeout=300.0, what='the reply to end')
    view.page.close()

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
The operator's web page in a real browser: the installed nano_llm_web and headless Chromium.

``WebNode`` starts ``nano_llm_web`` for a target (its log in a file, its port read from the
log). ``Browser`` drives Debian's Chromium (``/usr/bin/chromium``) through Playwright, which
is pointed at that browser and never downloads one. ``PageView`` reads what a person sees
on one page: the transcript, the robot calls, the figures, the error line.
"""

import json
import os
import pathlib
import shutil
from typing import Any, Dict, List, Optional

from node_harness import NodeProcess, stop_node

CHROMIUM = os.environ.get('NANO_LLM_CHROMIUM', '/usr/bin/chromium')
WEB_EXECUTABLE = 'nano_llm_web'
SERVING = r'serving the page for \S+ on [\d.]+:(\d+)'


def chromium_problem() -> str:
    """Return why the browser tests cannot run here, or ''."""
    try:
        import playwright.sync_api  # noqa: F401 - only the check
    except ImportError:
        return 'playwright is not installed (pip install -r requirements.txt)'
    if not (shutil.which(CHROMIUM) or pathlib.Path(CHROMIUM).exists()):
        return f'no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)'
    return ''


class WebNode:
    """The nano_llm_web executable as a child process, serving one target on a free port."""

    def __init__(self, log_path: os.PathLike, target: str, token: str = 'secret-token',
                 name: str = 'nano_llm_web', **params: Any):
        overrides = {'target': target, 'port': 0, 'token': token, **params}
        self.token = token
        self.process = NodeProcess(log_path, name=name, params_file=None, overrides=overrides,
                                   executable=WEB_EXECUTABLE)
        self.port = int(self.process.wait_for_log(SERVING, timeout=60.0).group(1))
        self.url = f'http://127.0.0.1:{self.port}/'

    def stop(self) -> int:
        """End the process (SIGINT first); return its exit code."""
        return self.process.stop()


class Browser:
    """Headless Chromium through Playwright; ``page()`` opens one page of the web node."""

    def __init__(self):
        from playwright.sync_api import sync_playwright
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=['--no-sandbox', '--disable-gpu'])
        self.dialogs: List[str] = []   # any alert() a page ran (none may)

    def page(self, url: str, token: Optional[str] = None, active: bool = True) -> 'PageView':
        """Open ``url`` in a new tab (the token in its address when given); wait for it."""
        # bypass_csp: Playwright's waits evaluate strings, which the page's CSP forbids; the
        # markup test then proves that rendering alone (textContent) runs nothing
        context = self.browser.new_context(viewport={'width': 1100, 'height': 760},
                                           bypass_csp=True)
        page = context.new_page()
        page.on('dialog', lambda dialog: (self.dialogs.append(dialog.message),
                                          dialog.dismiss()))
        page.goto(url + (f'#token={token}' if token else ''))
        view = PageView(page)
        view.wait('window.nanoLLM.connected === true', what='the websocket to connect')
        if token:
            view.wait("document.getElementById('mode').textContent === 'control'",
                      what='the token to be accepted')
        if active:
            view.wait("document.getElementById('node-state').textContent === 'active'",
                      what='the chat node to show as active')
        return view

    def close(self) -> None:
        """Close the browser and Playwright."""
        try:
            self.browser.close()
        finally:
            self._playwright.stop()


class PageView:
    """What one page shows, read from its DOM."""

    def __init__(self, page: Any):
        self.page = page

    def wait(self, expression: str, timeout: float = 60.0, what: str = '') -> Any:
        """Wait until the JavaScript ``expression`` is truthy; return its value."""
        try:
            return self.page.wait_for_function(expression, timeout=timeout * 1000).json_value()
        except Exception as error:  # noqa: B902 - say what was waited for, and what is shown
            raise AssertionError(f'timed out waiting for {what or expression}: {error}\n'
                                 f'the page shows: {self.text()[-2000:]}') from None

    def wait_bot_text(self, text: str, what: str, timeout: float = 60.0,
                      prefix: bool = False) -> None:
        """Wait until a bot row of the transcript shows ``text`` (or starts with it)."""
        check = f'.startsWith({json.dumps(text)})' if prefix else f' === {json.dumps(text)}'
        self.wait("[...document.querySelectorAll('#transcript li.bot .text')]"
                  f'.some(e => e.textContent{check})', timeout, what)

    def text(self) -> str:
        """Return the whole page's visible text."""
        return self.page.inner_text('body')

    def transcript(self) -> List[Dict[str, str]]:
        """Return the transcript's rows: role, text and class (user, bot, live, pending...)."""
        return self.page.evaluate("""() => [...document.querySelectorAll('#transcript li')]
            .map(li => ({role: li.querySelector('.role').textContent,
                         text: li.querySelector('.text').textContent,
                         cls: li.className}))""")

    def bot_texts(self) -> List[str]:
        """Return the texts of the bot rows of the transcript (live one included)."""
        return [row['text'] for row in self.transcript() if row['role'] == 'bot']

    def calls(self) -> List[Dict[str, str]]:
        """Return the robot call rows: call text, status, class, whether it has buttons."""
        return self.page.evaluate("""() => [...document.querySelectorAll('#calls li')]
            .map(li => ({id: li.dataset.callId, call: li.querySelector('.call').textContent,
                         status: li.querySelector('.status').textContent, cls: li.className,
                         buttons: li.querySelectorAll('button').length}))""")

    def error(self) -> str:
        """Return the error line's text."""
        return self.page.text_content('#error') or ''

    def prompt(self, text: str) -> None:
        """Type a prompt and press Send."""
        self.page.fill('#prompt', text)
        self.page.click('#send')

    def turns_rendered(self) -> Dict[str, Any]:
        """Return the page's own record: first rendered time and pieces per turn."""
        return self.page.evaluate('() => window.nanoLLM')


def close_all(browser: Optional[Browser], web: Optional[WebNode], process: Any = None,
              client: Any = None) -> None:
    """Close what a test started, whichever of them it got to: browser, web node, chat node."""
    try:
        if browser is not None:
            browser.close()
    finally:
        try:
            if web is not None:
                web.stop()
        finally:
            stop_node(process, client)

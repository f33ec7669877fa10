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
NanoLLM's worker queue, the only queue of the node's chat: the order of steps and replies.

A step handed to ``submit()`` that starts a reply with ``generate()`` is followed by that
reply before anything queued meanwhile (issue 23: the rule only held while nobody else
submitted). Model-free: the one-char-per-token fake backend.
"""

import threading

from ros2_nano_llm.llm import NanoLLM
from support.fakes import Chars

WAIT = 30.0


def test_a_reply_runs_right_after_the_step_that_started_it():
    model = NanoLLM(Chars(reply='ok'), 'chars')
    events, gate = [], threading.Event()
    try:
        model.submit(lambda: gate.wait(WAIT))  # hold the worker while both steps queue

        def step(name):
            def run():
                events.append(f'{name} starts')
                reply = model.generate(name)
                reply.subscribe(lambda text: None,
                                lambda reply: events.append(f'{name} reply ends'))
            return run
        first, second = model.submit(step('one')), model.submit(step('two'))
        last = model.submit(lambda: events.append('a call queued last'))
        gate.set()
        for future in (first, second, last):
            future.result(WAIT)
        assert events == ['one starts', 'one reply ends', 'two starts', 'two reply ends',
                          'a call queued last']
    finally:
        model.close()

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
The node's chat work on the model's one worker thread (ros/worker.py), on a real model.

The sink and the listeners here stand where the node and a ~/generate goal stand; the model,
its worker thread and the chat are real. The node over DDS is tested in test_node_*.py.
"""

import threading
import time

import pytest
from ros2_nano_llm.ros.worker import ChatSession, ChatWorker, LatestFrame, Prompt
from ros2_nano_llm.settings import Settings

WAIT = 60.0


class Sink:
    """Records what the node would publish, and on which thread."""

    def __init__(self, fail_on_piece=None):
        self.pieces, self.threads, self.ended = [], set(), []
        self.first = threading.Event()
        self.fail_on_piece = fail_on_piece

    def piece(self, turn_id, index, text):
        self.threads.add(threading.get_ident())
        self.pieces.append((turn_id, index, text))
        self.first.set()
        if self.fail_on_piece is not None and len(self.pieces) == self.fail_on_piece:
            raise RuntimeError('publisher is gone')

    def finished(self, turn_id, pieces, text, stats):
        self.threads.add(threading.get_ident())
        self.ended.append((turn_id, pieces, text))

    def function_called(self, turn_id, call):
        pass


class Listener:
    """A prompt's asker (what a ~/generate goal is): waits for the outcome."""

    def __init__(self, fail=False):
        self.outcome, self.done, self.fail = None, threading.Event(), fail

    def piece(self, index, text):
        pass

    def finished(self, outcome):
        self.outcome = outcome
        self.done.set()
        if self.fail:
            raise RuntimeError('the goal handle is gone')

    def wait(self):
        assert self.done.wait(WAIT), 'the prompt never ended'
        return self.outcome


@pytest.fixture
def chat(tiny_model_dir):
    """Return (worker, sink, session) on a fresh tiny-model chat, taking prompts."""
    config = Settings().updated({'model': tiny_model_dir('llama'), 'api': 'hf',
                                 'max_new_tokens': 12})
    session = ChatSession.load(config, LatestFrame())
    sink = Sink()
    worker = ChatWorker(session, sink, lambda: config, _Log())
    worker.resume()
    yield worker, sink, session
    worker.close(WAIT)
    session.close()


class _Log:
    """A logger that keeps its lines."""

    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(('info', text))

    warning = error = info


def ask(worker, text, **options):
    """Submit a prompt; return its listener."""
    listener = Listener(options.pop('fail', False))
    taken, note = worker.submit(Prompt(text, time.monotonic(), listener=listener, **options))
    assert taken, note
    return listener


def test_reply_streams_from_the_model_worker_and_joins_the_chat(chat):
    worker, sink, session = chat
    outcome = ask(worker, 'Hello there, robot.').wait()
    model_thread = session.model.submit(threading.get_ident).result(WAIT)
    assert sink.threads == {model_thread} != {threading.get_ident()}  # no thread in between
    assert ''.join(text for _, _, text in sink.pieces) == outcome.text and outcome.text
    assert sink.ended == [(outcome.turn_id, len(sink.pieces), outcome.text)]
    assert [m.role for m in session.history][-2:] == ['user', 'bot']
    assert worker.wait_idle(0) and not worker.busy


def test_a_call_waits_for_the_reply_in_progress(chat):
    worker, sink, session = chat
    before = len(session.history)
    listener = ask(worker, 'Count to ten.', max_new_tokens=40)
    assert sink.first.wait(WAIT)
    seen = worker.call(lambda: (listener.done.is_set(), len(session.history)), WAIT)
    assert seen == (True, before + 2)  # ran after the turn joined the chat, never during it


def test_a_failing_listener_does_not_stall_the_chat(chat):
    worker, sink, session = chat
    before = len(session.history)
    assert ask(worker, 'First.', fail=True).wait().text
    second = ask(worker, 'Second.').wait()  # the chat went on
    assert second.text and len(session.history) == before + 4 and worker.wait_idle(WAIT)


def test_a_publish_failure_takes_the_turn_back(chat):
    worker, sink, session = chat
    before = len(session.history)
    sink.fail_on_piece = 2
    failed = ask(worker, 'This reply cannot be published.').wait()
    assert 'reply failed' in failed.error and len(session.history) == before  # chat unchanged
    sink.fail_on_piece = None
    assert ask(worker, 'And this one can.').wait().text and len(session.history) == before + 2


def test_cancel_keeps_the_partial_reply(chat):
    worker, sink, session = chat
    listener = ask(worker, 'Tell me a long story.', max_new_tokens=200)
    assert sink.first.wait(WAIT)
    assert worker.cancel(listener_prompt(worker))
    outcome = listener.wait()
    assert outcome.stop_reason == 'stopped' and 0 < len(session.model.tokenize(outcome.text))
    assert session.history[-1].role == 'bot' and session.history[-1].content == outcome.text


def listener_prompt(worker):
    """Return the prompt being answered (what a goal's cancel callback holds)."""
    return worker._current


def test_close_with_work_queued_ends_everything(chat):
    worker, sink, session = chat
    running = ask(worker, 'One.', max_new_tokens=200)
    waiting = ask(worker, 'Two.')
    assert worker.close(WAIT)  # the reply stops, the waiting prompt is dropped
    assert running.wait().stop_reason == 'stopped' and 'dropped' in waiting.wait().error
    with pytest.raises(RuntimeError, match='shut down'):
        worker.call(lambda: None, WAIT)
    taken, note = worker.submit(Prompt('Three.', time.monotonic()))
    assert not taken and 'not active' in note

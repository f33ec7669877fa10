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
"""StreamingResponse: the queue bridge, with the real SmolLM2 tokenizer."""

import threading
import time

import pytest

from ros2_nano_llm.chat.stream import StreamingResponse
from support.tiny import load_smollm2_tokenizer


@pytest.fixture(scope='module')
def tokenizer():
    """Return the embedded model's tokenizer."""
    return load_smollm2_tokenizer()


def detok(tokenizer):
    """Return a detokenize function like the backends'."""
    return lambda ids: tokenizer.decode(list(ids))


TEXTS = ['Hello world, this is a robot.', 'héllo wörld — naïve café', 'emoji 😀🤖 and 日本語のテキスト',
         'tabs\tand\nnewlines\n\n  spaces', '']


@pytest.mark.parametrize('text', TEXTS)
def test_pieces_concatenate_and_never_split_characters(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = StreamingResponse(detok(tokenizer), timeout=5)

    def worker():
        for t in ids:
            stream.put(t)
            time.sleep(0.001)
        stream.end(eos=True, reason='eos')
    threading.Thread(target=worker).start()
    pieces = list(stream)
    assert ''.join(pieces) == stream.text == tokenizer.decode(ids)
    # only a closing piece (the end came after the last text was read) may be empty
    assert all('\ufffd' not in p for p in pieces) and all(pieces[:-1])
    assert stream.eos and stream.tokens == ids


def test_multibyte_character_held_back_until_complete(tokenizer):
    ids = tokenizer.encode('🤖', add_special_tokens=False)
    assert len(ids) > 1, 'the emoji spans several byte-level tokens'
    stream = StreamingResponse(detok(tokenizer), timeout=0.3)
    stream.put(ids[0])
    with pytest.raises(TimeoutError):
        next(stream)  # a token arrived, but half a character is never handed out
    for t in ids[1:]:
        stream.put(t)
    stream.end()
    assert list(stream) == ['🤖']


def test_timeout_when_worker_stalls(tokenizer):
    stream = StreamingResponse(detok(tokenizer), timeout=0.2)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match='stalled'):
        next(iter(stream))
    assert time.monotonic() - start < 5  # bounded by the stream's own timeout, not 300 s
    with pytest.raises(TimeoutError):
        stream.wait(timeout=0.1)


def test_worker_error_reaches_reader(tokenizer):
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    stream.put(tokenizer.encode('Hi', add_special_tokens=False)[0])
    stream.end(reason='error', error=ValueError('boom'))
    assert next(iter(stream)) == 'Hi'
    with pytest.raises(RuntimeError, match='generation failed: boom'):
        next(iter(stream))
    with pytest.raises(RuntimeError, match='boom'):
        stream.wait()


def test_stop_flag_and_repeated_iteration_end(tokenizer):
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    assert not stream.stopped
    stream.stop()
    assert stream.stopped
    stream.end(reason='stopped')
    assert list(stream) == [''] and list(stream) == []   # the closing piece, once
    assert stream.eos and stream.stop_reason == 'stopped'


def test_done_is_true_once_iteration_has_ended(tokenizer):
    # the node adds a reply to the chat only if it is done when its stream has ended
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    set_done = stream._done.set

    def slow_set():  # a slow ``set`` shows a wrong order in ``end()`` every time
        time.sleep(0.05)
        set_done()
    stream._done.set = slow_set
    stream.put(tokenizer.encode('Hi', add_special_tokens=False)[0])
    threading.Thread(target=stream.end, kwargs={'eos': True, 'reason': 'eos'}).start()
    assert ''.join(stream) == 'Hi'
    assert stream.done and stream.eos


def _reference_loop(stream):
    """Run NanoLLM's loop (a blank line after the piece that has ``eos``); return the output."""
    out = []
    for piece in stream:
        out.append(piece + ('\n\n' if stream.eos else ''))
    return ''.join(out)


@pytest.mark.parametrize('reason', ['eos', 'stop', 'length', 'stopped'])
def test_eos_is_true_on_the_last_piece_whatever_ended_it(tokenizer, reason):
    # issue 13 item 2: eos was never True while iterating, and False after max_new_tokens
    text = 'Hello world, this is a robot.'
    ids = tokenizer.encode(text, add_special_tokens=False)
    # the reader waits for each token (the end comes after the last piece was read) ...
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    reached = []

    def worker():
        for t in ids:
            stream.put(t)
            while len(reached) < len(stream.tokens) and not stream.done:
                time.sleep(0.001)
        stream.end(reason=reason)
    thread = threading.Thread(target=worker)
    seen = []
    thread.start()
    for piece in stream:
        seen.append((piece, stream.eos))
        reached.extend([None] * (len(stream.tokens) - len(reached)))
    thread.join(5)
    assert [eos for _, eos in seen] == [False] * (len(seen) - 1) + [True]
    assert ''.join(p for p, _ in seen) == text and stream.stop_reason == reason
    # ... or the worker has finished before the reader starts: eos on the last text piece
    early = StreamingResponse(detok(tokenizer), timeout=5)
    for t in ids:
        early.put(t)
    early.end(reason=reason)
    pieces = []
    for piece in early:
        pieces.append((piece, early.eos))
    assert pieces[-1][1] and pieces[-1][0] and not any(eos for _, eos in pieces[:-1])


def test_reference_loop_ends_each_reply_with_one_blank_line(tokenizer):
    ids = tokenizer.encode('One two three four.', add_special_tokens=False)
    for delay in (0.0, 0.002):
        stream = StreamingResponse(detok(tokenizer), timeout=5)

        def worker():
            for t in ids:
                stream.put(t)
                time.sleep(delay)
            time.sleep(0.02)  # e.g. the forward pass that samples the stop token
            stream.end(eos=True, reason='eos')
        threading.Thread(target=worker).start()
        out = _reference_loop(stream)
        assert out == 'One two three four.\n\n'


def test_eos_without_a_reader_and_after_an_error(tokenizer):
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    stream.put(tokenizer.encode('Hi', add_special_tokens=False)[0])
    assert not stream.eos and stream.stop_reason is None      # still running
    stream.end(reason='length')
    assert stream.eos and stream.wait() == 'Hi'                # nobody iterates: ended is eos
    failed = StreamingResponse(detok(tokenizer), timeout=5)
    failed.put(tokenizer.encode('Hi', add_special_tokens=False)[0])
    failed.end(reason='error', error=ValueError('boom'))
    assert next(failed) == 'Hi' and not failed.eos            # the error is still to come
    with pytest.raises(RuntimeError, match='boom'):
        next(failed)


# ---- subscribe(): pieces by callback on the worker thread (how the node takes a reply) ----
class Subscriber:
    """Records each piece and the end, with the thread that handed them over."""

    def __init__(self, fail_on=None):
        self.pieces, self.threads, self.ended = [], set(), []
        self.fail_on = fail_on

    def piece(self, text):
        self.threads.add(threading.current_thread().name)
        self.pieces.append(text)
        if self.fail_on is not None and len(self.pieces) == self.fail_on:
            raise ValueError('subscriber bug')

    def end(self, reply):
        self.threads.add(threading.current_thread().name)
        self.ended.append((reply.stop_reason, reply.text))


@pytest.mark.parametrize('text', TEXTS)
def test_subscriber_gets_every_piece_on_the_worker_thread(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    seen = Subscriber()
    stream.subscribe(seen.piece, seen.end)

    def worker():
        for t in ids:
            stream.put(t)
            # the piece is handed over inside put(): no other thread is in between
            so_far = tokenizer.decode(stream.tokens)
            if not so_far.endswith('\ufffd'):
                assert ''.join(seen.pieces) == so_far
        stream.end(eos=True, reason='eos')
    thread = threading.Thread(target=worker, name='model-worker')
    thread.start()
    thread.join(5)
    assert ''.join(seen.pieces) == text and all(seen.pieces)
    assert all('\ufffd' not in p for p in seen.pieces)
    assert seen.ended == [('eos', text)] and seen.threads <= {'model-worker'}


def test_subscribe_late_gets_the_backlog_and_the_end(tokenizer):
    text = 'emoji 😀🤖 late'
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    for t in ids:
        stream.put(t)
    stream.end(reason='length')
    seen = Subscriber()
    stream.subscribe(seen.piece, seen.end)
    assert ''.join(seen.pieces) == text and seen.ended == [('length', text)]


def test_a_reply_has_one_reader(tokenizer):
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    seen = Subscriber()
    stream.subscribe(seen.piece, seen.end)
    with pytest.raises(RuntimeError, match='subscribe'):
        next(stream)
    with pytest.raises(RuntimeError, match='already has a reader'):
        stream.subscribe(seen.piece, seen.end)
    iterated = StreamingResponse(detok(tokenizer), timeout=5)
    iterated.put(tokenizer.encode('Hi', add_special_tokens=False)[0])
    assert next(iterated) == 'Hi'
    with pytest.raises(RuntimeError, match='already has a reader'):
        iterated.subscribe(seen.piece, seen.end)


def test_failing_subscriber_stops_the_reply_and_still_gets_the_end(tokenizer):
    ids = tokenizer.encode('one two three four five', add_special_tokens=False)
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    seen = Subscriber(fail_on=2)
    stream.subscribe(seen.piece, seen.end)
    for t in ids:
        stream.put(t)
        if stream.stopped:   # what the generation loop does after each token
            break
    stream.end(reason='stopped')
    assert len(seen.pieces) == 2 and seen.ended == [('stopped', stream.text)]


def test_subscriber_of_a_failed_reply_sees_the_error(tokenizer):
    stream = StreamingResponse(detok(tokenizer), timeout=5)
    seen = Subscriber()
    stream.subscribe(seen.piece, seen.end)
    stream.put(tokenizer.encode('Hi', add_special_tokens=False)[0])
    stream.end(reason='error', error=ValueError('boom'))
    assert seen.pieces == ['Hi'] and seen.ended == [('error', 'Hi')]
    assert isinstance(stream.error, ValueError)

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
    assert all('\ufffd' not in p and p for p in pieces)
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
    assert list(stream) == [] and list(stream) == []
    assert not stream.eos and stream.stop_reason == 'stopped'


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

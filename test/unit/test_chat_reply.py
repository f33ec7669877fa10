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
The reply's record apart from its token stream, without a model.

A NanoLLM over the one-char-per-token fake backend (and the generation loop over a scripted
one) fills a ``Reply``: the calls that ran, why the reply ended, its figures and the stop
request. The stream carries the tokens and text and reads the record for NanoLLM's users.
"""

import math

import pytest
from ros2_nano_llm.chat.history import ChatHistory
from ros2_nano_llm.chat.reply import Figures, Reply
from ros2_nano_llm.chat.stream import StreamingResponse
from ros2_nano_llm.functions import BotFunction
from ros2_nano_llm.generation import GenerationJob, run
from ros2_nano_llm.llm import NanoLLM
from ros2_nano_llm.models.base import Inputs, KVCache
from ros2_nano_llm.models.sampling import SamplingParams
from support.fakes import Chars, Scripted

DATE = BotFunction(name='DATE', func=lambda: 'Monday', docs='Returns the date.')


@pytest.fixture
def model():
    model = NanoLLM(Chars(), 'chars')
    yield model
    model.close()


def test_the_record_holds_calls_stop_reason_and_figures_apart_from_the_stream(model):
    model.grammars.enabled = False  # the fake has no grammar vocabulary: free calls
    out = model.generate('Hi', functions=[DATE], template='chat-ml', reply_prefix='DATE()',
                         max_new_tokens=40)
    out.wait()
    record = out.record
    assert isinstance(record, Reply)
    assert [(c.name, c.result) for c in record.calls] == [('DATE', 'Monday')]
    assert out.text == 'DATE() -> MondayFine, thanks.' and record.stop_reason == 'eos'
    assert record.figures.input_tokens == len('Hi')
    assert record.figures.output_tokens == len(out.tokens)
    # the stream keeps tokens and text; what it shows of the record, it reads from it
    assert not {'calls', 'stop_reason', 'error', 'kv_cache', 'figures'} & set(vars(out))
    assert out.calls is record.calls and out.stop_reason == 'eos' and out.error is None
    with pytest.raises(AttributeError):
        out.stop_reason = 'length'  # read-only: the loop writes the record
    assert model.stats == record.figures.as_dict()


def test_each_reply_keeps_its_own_figures(model):
    first = model.generate('Hi', max_new_tokens=3)
    first.wait()
    second = model.generate('Hi', max_new_tokens=5)
    second.wait()
    assert first.record.figures.output_tokens == 3 and first.text == 'Fin'
    assert second.record.figures.output_tokens == 5
    assert model.stats['output_tokens'] == 5  # the model's stats: the latest reply's


def test_stop_is_a_request_on_the_record_that_the_loop_honours():
    backend = Scripted(['Hel', 'lo', ' more', ' world'])
    cache = KVCache(backend)
    stream = StreamingResponse(backend.detokenize, timeout=5, kv_cache=cache)
    stream.stop()  # before the loop runs: none of the prompt runs, no token (issue 21 item 12)
    assert stream.record.stopped and stream.stopped
    run(backend, GenerationJob(Inputs.from_tokens(backend.tokenize('Hi')), cache, stream,
                               SamplingParams()), {})
    assert stream.tokens == [] and stream.record.stop_reason == 'stopped'
    assert stream.record.figures.output_tokens == 0


def test_a_failed_reply_records_its_error_and_no_figures():
    model = NanoLLM(Chars(fail_at=2), 'chars')
    try:
        out = model.generate('Hi', max_new_tokens=10)
        with pytest.raises(RuntimeError, match='accelerator went away'):
            out.wait()
        assert out.record.stop_reason == 'error' and out.record.figures is None
        assert out.error is out.record.error and 'accelerator' in str(out.error)
    finally:
        model.close()


def test_the_cache_stays_with_the_history_the_reply_only_points_to_it(model):
    history = ChatHistory(model, chat_template='chat-ml')
    history.append('user', 'Hello.')
    inputs, _ = history.embed_chat()
    cache = history.kv_cache
    out = model.generate(inputs, kv_cache=cache, stop_tokens=history.stop_tokens)
    history.append('bot', out)
    assert out.kv_cache is cache and history.kv_cache is cache
    # without a cache, generate() makes a fresh one: the reply's, for its caller to adopt
    alone = model.generate('Hi', max_new_tokens=4)
    alone.wait()
    assert alone.kv_cache is not cache and len(alone.kv_cache) == len('Hi') + 3


def test_figures_from_the_measured_times():
    figures = Figures.measure(100, 11, 0.5, 2.0, first_token_at=10.25, submitted=10.0)
    assert (figures.prefill_rate, figures.decode_rate) == (200.0, 5.0)
    assert figures.time_to_first_token == 0.25
    none = Figures.measure(4, 0, 0.1, 0.0, first_token_at=None, submitted=1.0)
    assert none.decode_rate == 0.0 and math.isnan(none.time_to_first_token)
    assert set(none.as_dict()) == {'input_tokens', 'output_tokens', 'prefill_time',
                                   'prefill_rate', 'decode_time', 'decode_rate',
                                   'time_to_first_token'}

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
"""What a web page may send (``ros.web.limits``); the web parameters (``ros.web.config``)."""

import json

import pytest
from ros2_nano_llm.ros.web import config
from ros2_nano_llm.ros.web.limits import parse_message, TokenBucket


def parse(message, max_bytes=8192, max_prompt_chars=100):
    text = message if isinstance(message, str) else json.dumps(message)
    return parse_message(text, max_bytes, max_prompt_chars)


def test_well_formed_requests_pass():
    for message in ({'op': 'prompt', 'text': 'hi', 'id': 3}, {'op': 'stop'}, {'op': 'reset'},
                    {'op': 'decide', 'call_id': '4', 'approve': False, 'reason': 'no'},
                    {'op': 'auth', 'token': 'x'}, {'op': 'history'}):
        assert parse(message) == (message, '')


@pytest.mark.parametrize('message, error', [
    ('{', 'not JSON'),
    ('[1]', 'a message must be a JSON object'),
    ({'op': 'launch'}, "unknown op 'launch'"),
    ({'text': 'hi'}, "unknown op 'None'"),
    ({'op': 'prompt'}, 'prompt: text must be a str'),
    ({'op': 'prompt', 'text': '   '}, 'prompt: the text is empty'),
    ({'op': 'prompt', 'text': 'x' * 101}, 'prompt: 101 characters, at most 100'),
    ({'op': 'decide', 'call_id': 4, 'approve': True}, 'decide: call_id must be a str'),
    ({'op': 'decide', 'call_id': '4', 'approve': 'yes'}, 'decide: approve must be a bool'),
    ({'op': 'decide', 'call_id': '4', 'approve': True, 'reason': 1},
     'decide: reason must be a string'),
])
def test_bad_requests_say_why(message, error):
    parsed, why = parse(message)
    assert parsed is None and why.startswith(error), why


def test_size_is_counted_in_utf8_bytes():
    text = json.dumps({'op': 'prompt', 'text': 'é' * 60}, ensure_ascii=False)
    assert parse(text, max_bytes=len(text))[0] is None  # é is two bytes
    assert 'message too large' in parse(text, max_bytes=len(text))[1]
    assert parse(text, max_bytes=2 * len(text))[0] is not None


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=1e-9, burst=3)
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]
    fast = TokenBucket(rate=1e9, burst=1)
    assert all(fast.take() for _ in range(100))


def test_config_defaults_come_from_one_table():
    defaults = {name: default for name, (default, _) in config.PARAMETERS.items()}
    cfg = config.read(defaults.get)
    assert cfg.host == '127.0.0.1'  # localhost unless opened
    assert cfg.token_generated and len(cfg.token) >= 20
    assert cfg.camera_topic == '/nano_llm/input/image'
    assert set(config.PARAMETERS) == set(config.DESCRIPTIONS)


@pytest.mark.parametrize('name, value, error', [
    ('target', 'nano_llm', "target must be a node's fully qualified name"),
    ('port', 70000, 'port must be in 0..65535'),
    ('max_prompt_chars', 0, 'max_prompt_chars must be at least 1'),
    ('messages_per_second', 0.0, 'messages_per_second must be above 0'),
])
def test_bad_parameters_are_refused(name, value, error):
    values = {n: d for n, (d, _) in config.PARAMETERS.items()}
    values[name] = value
    with pytest.raises(ValueError, match=error):
        config.read(values.get)


def test_a_given_token_is_kept():
    values = {n: d for n, (d, _) in config.PARAMETERS.items()}
    values['token'] = 'mine'
    cfg = config.read(values.get)
    assert cfg.token == 'mine' and not cfg.token_generated

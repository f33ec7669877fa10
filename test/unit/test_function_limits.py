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
"""A FunctionRecord's argument limits are in its schema and checked on every bind (issue 19)."""

import pytest
from ros2_nano_llm.functions import execute, parse_json_call
from ros2_nano_llm.functions.record import FunctionRecord

moved = []


def drive(speed: float, mode: str = 'slow') -> str:
    """Drive."""
    moved.append((speed, mode))
    return 'ok'


def record():
    return FunctionRecord.create(drive, limits={'speed': {'minimum': -0.5, 'maximum': 0.5},
                                                'mode': {'enum': ['slow', 'fast']}})


def test_limits_go_into_the_schema():
    props = record().schema['properties']
    assert props['speed'] == {'type': 'number', 'minimum': -0.5, 'maximum': 0.5}
    assert props['mode']['enum'] == ['slow', 'fast']


@pytest.mark.parametrize('args, reason', [
    ('{"speed": 500}', 'must be at most 0.5, got 500.0'),
    ('{"speed": -1}', 'must be at least -0.5, got -1.0'),
    ('{"speed": 0.1, "mode": "warp"}', "must be one of ['slow', 'fast'], got 'warp'"),
])
def test_an_out_of_range_value_never_reaches_the_function(args, reason):
    moved.clear()
    text = execute(parse_json_call('drive', args), [record()])
    assert text.startswith("error: bad arguments for 'drive'") and reason in text, text
    assert moved == []


def test_values_in_range_run():
    moved.clear()
    assert execute(parse_json_call('drive', '{"speed": 0.5, "mode": "fast"}'), [record()]) == 'ok'
    assert moved == [(0.5, 'fast')]


def test_limits_on_an_unknown_argument_are_refused():
    with pytest.raises(ValueError, match="no argument 'sped'"):
        FunctionRecord.create(drive, limits={'sped': {'maximum': 1}})
    with pytest.raises(ValueError, match='unknown'):
        FunctionRecord.create(drive, limits={'speed': {'max': 1}})

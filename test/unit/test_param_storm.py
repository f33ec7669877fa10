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
The parameter storm's odd-looking values against each row's range and kind (issue 21 item 13).

Each one the storm accepted is valid by its row (the reasons are in ``settings``' docstring);
the neighbouring values that are not valid are refused with the reason.
"""

import pytest

rclpy_parameter = pytest.importorskip('rclpy.parameter')
params = pytest.importorskip('ros2_nano_llm.ros.params')
Parameter = rclpy_parameter.Parameter


def _check(config, loaded, **values):
    changes = [Parameter(name, value=value) for name, value in values.items()]
    return params.check_change(config, changes, loaded, 'active' if loaded else 'unconfigured')


@pytest.mark.parametrize('name, value', [('base_url', ''), ('max_new_tokens', 1),
                                         ('history_file', ''), ('repetition_penalty', 0.5)])
def test_the_storms_values_are_valid_on_an_active_node(name, value):
    new, reason = _check(params.NodeConfig(), True, **{name: value})
    assert reason == ''


def test_a_reload_setting_that_changes_at_run_time_is_refused_with_the_way_out():
    config = params.NodeConfig(history_file='/tmp/chat.json', base_url='http://robot:8000')
    for name in ('history_file', 'base_url'):
        new, reason = _check(config, True, **{name: ''})
        assert new is None and 'clean up the node' in reason
    new, reason = _check(config, False, history_file='')  # unconfigured: for next configure
    assert reason == '' and new.history_file == ''


@pytest.mark.parametrize('name, value, words', [('repetition_penalty', 0.0, 'must be > 0'),
                                                ('top_p', 0.0, 'must be > 0')])
def test_values_outside_the_rows_range_are_refused(name, value, words):
    new, reason = _check(params.NodeConfig(), True, **{name: value})
    assert new is None and words in reason

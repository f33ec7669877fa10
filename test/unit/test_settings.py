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
"""One source of truth: the node's parameters, the CLI's flags and generate() share the table."""

import dataclasses
import inspect
import json
import pathlib
import subprocess
import sys

import pytest
from ros2_nano_llm import settings
from ros2_nano_llm.chat import __main__ as terminal
from ros2_nano_llm.generation import GenerationJob
from ros2_nano_llm.llm import NanoLLM
from ros2_nano_llm.settings import PARAMS, SAMPLING, SPECS

# the terminal chat's own flags (no node parameter has their meaning)
CLI_ONLY = {'prompt', 'history', 'disable_streaming', 'disable_stats', 'print_stats',
            'prompt_color', 'reply_color', 'no_color', 'log_level', 'debug'}


def _other_value(spec):
    """Return a valid value of ``spec`` that is not its default, and its command-line text."""
    if spec.choices:
        value = next(c for c in spec.choices if c != spec.default)
    elif spec.type is int:
        value = spec.default + 1
    elif spec.type is float:
        value = (spec.low + spec.high) / 2 if spec.default != (spec.low + spec.high) / 2 else 0.5
    else:
        value = 'x' + spec.default
    return value, str(value)


# run in a child process: an rclpy context left in this one would make later forks
# (flake8's worker pool) hang
_DESCRIBE = """
import json, rclpy
from rclpy.context import Context
from ros2_nano_llm.ros.node import ChatLifecycleNode
context = Context()
rclpy.init(context=context)
node = ChatLifecycleNode('settings_test', context=context)
out = {}
for name in node._parameters:
    d = node.describe_parameter(name)
    limits = list(d.integer_range or d.floating_point_range)
    value = node.get_parameter(name).value
    out[name] = [list(value) if isinstance(value, (list, tuple)) else value, d.description,
                 d.additional_constraints,
                 [limits[0].from_value, limits[0].to_value] if limits else None]
print(json.dumps(out))
node.destroy_node()
rclpy.shutdown(context=context)
"""


@pytest.fixture(scope='module')
def declared():
    pytest.importorskip('rclpy')
    done = subprocess.run([sys.executable, '-P', '-c', _DESCRIBE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_row_is_a_node_parameter_with_its_default(declared):
    for spec in PARAMS:
        value, description, constraints, limits = declared[spec.name]
        assert settings.plain(value, spec) == spec.default, spec.name
        assert (description, constraints) == (spec.description, spec.constraints)
        assert limits == (None if spec.low is None else [spec.low, spec.high]), spec.name
    assert settings.Settings() == settings.Settings(
        **{spec.name: settings.plain(declared[spec.name][0], spec) for spec in PARAMS})


def test_cli_rows_are_flags_with_the_table_defaults():
    defaults = vars(terminal.parse_args([]))
    cli_rows = {spec.name for spec in PARAMS if spec.cli}
    # the CLI declares no shared setting of its own: every other flag is CLI-only
    assert set(defaults) - cli_rows == CLI_ONLY
    assert set(SAMPLING) | {'model', 'api', 'n_threads', 'n_ctx', 'n_gpu_layers', 'base_url',
                            'quantization', 'max_context_len', 'chat_template',
                            'system_prompt', 'wrap_tokens'} == cli_rows
    for name in cli_rows:
        assert defaults[name] == SPECS[name].default, name
        assert type(defaults[name]) is SPECS[name].type, name


def test_each_flag_sets_its_setting():
    for spec in PARAMS:
        if not spec.cli:
            continue
        if spec.type is bool:
            args = terminal.parse_args([spec.flag])
            value = not spec.default
        else:
            value, text = _other_value(spec)
            args = terminal.parse_args([spec.flag, text])
        config = settings.from_args(args)
        assert getattr(config, spec.name) == value, spec.flag
        assert settings.changed(settings.Settings(), config) == [spec.name]


def test_flags_refuse_what_the_node_refuses(capsys):
    for argv in (['--max-new-tokens', '0'], ['--top-p', '1.5'], ['--api', 'nope'],
                 ['--n-threads', 'two']):
        with pytest.raises(SystemExit) as exit_:
            terminal.parse_args(argv)
        assert exit_.value.code == 2
    assert 'max_new_tokens must be in [1, 8192]' in capsys.readouterr().err
    # a combination the node refuses ends the chat before any model loads
    assert terminal.main(['--do-sample', '--temperature', '0', '--prompt', 'Hi']) == 2
    assert 'temperature must be > 0 when do_sample' in capsys.readouterr().err


def test_cli_and_node_load_the_same_way():
    args = terminal.parse_args(['--api', 'llama_cpp', '--n-threads', '2', '--n-ctx', '512'])
    node_config = settings.Settings(api='llama_cpp', n_threads=2, n_ctx=512)
    assert settings.from_args(args).load_options() == node_config.load_options() == {
        'model': 'default', 'api': 'llama_cpp', 'quantization': None, 'max_context_len': None,
        'n_threads': 2, 'n_ctx': 512, 'n_gpu_layers': -1}
    openai = settings.Settings(api='openai', base_url='http://host:1')
    assert openai.load_options()['base_url'] == 'http://host:1'
    assert 'n_threads' not in openai.load_options()
    assert settings.Settings(api='openai').load_options()['base_url'] is None


def test_library_defaults_are_the_table_defaults():
    signature = inspect.signature(NanoLLM.generate).parameters
    for name in SAMPLING:
        assert signature[name].default == SPECS[name].default, name
    assert settings.SAMPLING_DEFAULTS == settings.Settings().sampling()
    job = {f.name: f.default for f in dataclasses.fields(GenerationJob)}
    assert job['max_new_tokens'] == SPECS['max_new_tokens'].default
    assert job['min_new_tokens'] == SPECS['min_new_tokens'].default


def test_the_shipped_params_file_lists_every_row_with_its_default():
    yaml = pytest.importorskip('yaml')
    root = pathlib.Path(__file__).resolve().parents[2]
    with open(root / 'config' / 'nano_llm.yaml', encoding='utf-8') as f:
        values = yaml.safe_load(f)['/**']['ros__parameters']
    assert set(values) == set(SPECS)
    # the file differs from the table only where it means to: `ros2 run` starts the chat
    differ = {name for name, value in values.items()
              if settings.plain(value, SPECS[name]) != SPECS[name].default}
    assert differ == {'autostart'}

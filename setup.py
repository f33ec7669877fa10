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
pip install of the ros2_nano_llm Python package, for use without colcon.

The ROS 2 build is CMakeLists.txt + package.xml (colcon, see scripts/setup.sh); it also
generates ros2_nano_llm.msg / ros2_nano_llm.srv, which a plain pip install does not have.
This file gives the library and the terminal chat (``python3 -m ros2_nano_llm.chat``).
The core needs numpy only (no torch): the ``openai`` backend works with it alone. Each
other backend is an extra, so that pip never picks a torch build by itself: ``.[llama_cpp]``
(llama.cpp, no torch), ``.[hf]`` (torch, transformers), ``.[vision]`` (hf plus the image
stack), ``.[all]``. Install requirements.txt first to get the pinned CPU torch.
"""

from setuptools import find_packages
from setuptools import setup

package_name = 'ros2_nano_llm'

HF = ['torch', 'transformers>=5', 'accelerate', 'gguf']
# the backend drives llama.cpp's context through llama-cpp-python's 0.3 internals
LLAMA_CPP = ['llama-cpp-python>=0.3.36,<0.4']
VISION = HF + ['opencv-python-headless', 'rosbags-image']
# the operator's web page (nano_llm_web): server and websockets; the page needs no build step
WEB = ['aiohttp>=3.9,<4']

setup(
    name=package_name,
    version='0.1.0',
    description='NanoLLM-style chat library and ROS 2 lifecycle node for small language models',
    license='Apache-2.0',
    maintainer='ros2_nano_llm maintainers',
    maintainer_email='maintainers@ros2-nano-llm.dev',
    python_requires='>=3.10',
    packages=find_packages(include=[package_name, package_name + '.*']),
    # the web page's files (plain HTML/JS/CSS, no build step)
    package_data={package_name + '.ros.web': ['static/*']},
    install_requires=['numpy', 'PyYAML', 'termcolor', 'pillow', 'Jinja2'],
    extras_require={
        'hf': HF,
        'llama_cpp': LLAMA_CPP,
        'vision': VISION,
        'web': WEB,
        'all': LLAMA_CPP + VISION + WEB,  # VISION includes HF
        'test': ['pytest', 'playwright'],
        'benchmark': ['matplotlib'],  # the PNG plots of benchmarks/ (benchmarks/plots.py)
    },
    entry_points={
        'console_scripts': [
            'nano_llm_node = ros2_nano_llm.ros.node:main',
            'nano_llm_sim_robot = ros2_nano_llm.ros.sim_robot:main',
            'nano_llm_web = ros2_nano_llm.ros.web.app:main',
        ],
    },
    zip_safe=False,
    # Keep setuptools' scratch files out of colcon's build/<package> directory.
    options={'build': {'build_base': 'build/setuptools'}},
)

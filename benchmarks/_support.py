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
"""Put test/ on ``sys.path`` so the benchmarks import the test-support package ``support``."""

import os
import sys

TEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, 'test')
if os.path.abspath(TEST_DIR) not in (os.path.abspath(p) for p in sys.path):
    sys.path.insert(0, os.path.abspath(TEST_DIR))

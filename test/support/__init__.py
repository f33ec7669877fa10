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
Code that only the tests and benchmarks use: tiny random-weight models, a llama.cpp server.

Importable as ``support`` with ``test/`` on ``sys.path``: pytest puts it there (test/conftest.py
is a rootdir conftest), and the benchmarks that need it add it where they import it. Not
installed with the library.
"""

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
"""Model backends by name."""

from typing import Dict, Type


def _hf():
    from .hf import HFBackend
    return HFBackend


def _llama_cpp():
    from .llama_cpp import LlamaCppBackend
    return LlamaCppBackend


def _openai():
    from .openai import OpenAIBackend
    return OpenAIBackend


def _mlc():
    from .mlc import MLCBackend
    return MLCBackend


# name -> loader of the backend class (imported lazily: each backend pulls in its own library)
BACKENDS: Dict[str, object] = {'hf': _hf, 'llama_cpp': _llama_cpp, 'openai': _openai,
                               'mlc': _mlc}


def get_backend(name: str) -> Type:
    """Return the backend class registered as ``name``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown api '{name}'; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]()

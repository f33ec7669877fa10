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
"""Model backends by name, and the choice of one for ``api=None`` / ``'auto'``."""

import importlib.util
import os
from typing import Dict, Type

from .loading import DEFAULT_MODEL


def _hf():
    try:
        from .hf import HFBackend
    except ImportError as error:
        if error.name not in ('torch', 'transformers'):
            raise
        raise RuntimeError(
            f"api='hf' needs torch and transformers, and {error.name} is not installed: pip "
            "install 'ros2_nano_llm[hf]' (or requirements.txt); for a GGUF model, "
            "api='llama_cpp' needs neither") from error
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
        raise ValueError(f"unknown api '{name}'; choose one of {sorted(BACKENDS)} or 'auto'")
    return BACKENDS[name]()


def auto_api(model: str) -> str:
    """
    Return the fastest installed backend for ``model``.

    llama_cpp for a GGUF model (``'default'`` is one, as is a directory holding a single
    ``.gguf`` and no ``config.json``) when llama-cpp-python is installed; hf otherwise.
    """
    if _is_gguf(model) and importlib.util.find_spec('llama_cpp') is not None:
        return 'llama_cpp'
    return 'hf'


def _is_gguf(model: str) -> bool:
    if not isinstance(model, str):
        return False
    model = model.strip()
    if model == DEFAULT_MODEL or model.endswith('.gguf'):
        return True
    path = os.path.expanduser(model)
    return os.path.isdir(path) and not os.path.isfile(os.path.join(path, 'config.json')) \
        and sum(f.endswith('.gguf') for f in os.listdir(path)) == 1

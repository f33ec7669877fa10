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
A chat's KV cache saved beside its chat file, for a warm restart.

The chat file stays the source of truth: a state file only saves the prefill of what the
chat already holds, and it is loaded only when it matches the chat's tokens, the model file
and the backend; otherwise it is ignored with the reason. Losing it only costs speed.

The file is ``MAGIC``, an 8-byte header length, a JSON header (backend, model identity,
the cached token ids, payload length and SHA-256), then the backend's bytes
(``Backend.cache_state``: llama.cpp's sequence state, or hf's key/value tensors as
safetensors). It is written to an exclusive temporary file in the same folder, synced and
renamed over the old one; it is read without following a symlink, and a short, long or
altered file is refused before any state is restored.

Saving takes a snapshot on the model's worker (``NanoLLM.submit``; a memory copy, about
23 MB per 1,000 tokens for the embedded SmolLM2 on llama.cpp, 46 MB on hf in float32) and
writes it on the caller's thread, so a thread of its own can write while replies go on.
"""

from dataclasses import dataclass
import hashlib
import json
import logging
import os
import struct
import tempfile
from typing import Any, List, Optional, Tuple

from .base import KVCache

log = logging.getLogger(__name__)

MAGIC = b'ros2_nano_llm KV state 1\n'
DEFAULT_MAX_BYTES = 256 << 20   # 256 MiB: ~11,000 tokens of the embedded model on llama.cpp
_HEADER_MAX = 16 << 20          # the header holds the token ids: 16 MiB is millions of them
_SAMPLE = 1 << 20               # bytes of a model file's head and tail in its identity

Result = Tuple[bool, str]


@dataclass
class Snapshot:
    """A consistent copy of a chat's cache, taken on the model's worker."""

    backend: str
    model: str
    keys: List[int]
    payload: bytes


def state_path(chat_file: str) -> str:
    """Return where the KV state of ``chat_file`` is kept (beside it)."""
    return chat_file + '.kv'


def model_identity(path: Optional[str]) -> str:
    """Return a digest naming the model's weights: file names, sizes, head and tail bytes."""
    digest = hashlib.sha256()
    if path and os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path))
    else:
        files = [path] if path else []
    for name in files:
        if not os.path.isfile(name):
            continue
        size = os.path.getsize(name)
        digest.update(f'{os.path.basename(name)}:{size}\n'.encode())
        with open(name, 'rb') as f:
            digest.update(f.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                f.seek(size - _SAMPLE)
                digest.update(f.read(_SAMPLE))
    return digest.hexdigest()


def snapshot(model: Any, cache: KVCache) -> Optional[Snapshot]:
    """Copy ``cache``'s text positions; run it on the model's worker (``model.submit``)."""
    keys = list(cache.keys)
    n = next((i for i, k in enumerate(keys) if not isinstance(k, int)), len(keys))
    payload = model.backend.cache_state(cache.state, n) if n else None
    if payload is None:
        return None
    return Snapshot(model.backend.name, model_identity(model.config.path), keys[:n], payload)


def write_snapshot(snap: Snapshot, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Result:
    """Write ``snap`` to ``path`` atomically; return ``(ok, reason)``."""
    header = json.dumps({'backend': snap.backend, 'model': snap.model, 'keys': snap.keys,
                         'payload_bytes': len(snap.payload),
                         'payload_sha256': hashlib.sha256(snap.payload).hexdigest()}).encode()
    size = len(MAGIC) + 8 + len(header) + len(snap.payload)
    if size > max_bytes:
        return False, (f'the KV state of {len(snap.keys)} tokens takes {size} bytes, more than '
                       f'the limit of {max_bytes}; not saved')
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(MAGIC + struct.pack('<Q', len(header)) + header)
            f.write(snap.payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never what it points to
    except OSError as error:
        os.unlink(tmp)
        return False, f'could not write {path}: {error}'
    return True, f'saved {len(snap.keys)} tokens ({size} bytes)'


def save_state(model: Any, history: Any, path: str, max_bytes: int = DEFAULT_MAX_BYTES,
               timeout: Optional[float] = 30.0) -> Result:
    """
    Save ``history``'s KV cache to ``path``; return ``(ok, reason)``.

    The snapshot is taken on the model's worker, between replies; the file is written on the
    calling thread. Call it from a thread of its own to keep replies going meanwhile.
    """
    try:
        snap = model.submit(lambda: snapshot(model, history.kv_cache)).result(timeout)
    except Exception as error:  # noqa: BLE001 - a closed model, a timeout: reported, not raised
        return False, f'no snapshot of the KV cache: {error}'
    if snap is None:
        return False, f"nothing to save (an empty cache, or api='{model.api}' cannot save one)"
    return write_snapshot(snap, path, max_bytes)


def read_snapshot(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Tuple[Optional[Snapshot],
                                                                          str]:
    """Read and check a state file; return ``(snapshot, '')`` or ``(None, reason)``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None, f'no KV state at {path}'
    except OSError as error:
        return None, f'cannot open {path} ({error}; a symlink is never followed)'
    with os.fdopen(fd, 'rb') as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            return None, f'{path} has {size} bytes, more than the limit of {max_bytes}'
        data = f.read(max_bytes + 1)
    head = len(MAGIC) + 8
    if len(data) < head or not data.startswith(MAGIC):
        return None, f'{path} is not a KV state file (or is cut short)'
    (n,) = struct.unpack('<Q', data[len(MAGIC):head])
    if n > _HEADER_MAX or head + n > len(data):
        return None, f'{path} is cut short (header)'
    try:
        header = json.loads(data[head:head + n])
        payload = data[head + n:]
        keys = [int(k) for k in header['keys']]
        ok = (len(payload) == int(header['payload_bytes']) and
              hashlib.sha256(payload).hexdigest() == header['payload_sha256'])
        snap = Snapshot(str(header['backend']), str(header['model']), keys, payload)
    except (ValueError, KeyError, TypeError) as error:
        return None, f'{path} has a bad header ({error})'
    if not ok:
        return None, f'{path} is cut short or altered (length or checksum differs)'
    return snap, ''


def load_state(model: Any, history: Any, path: str, max_bytes: int = DEFAULT_MAX_BYTES,
               timeout: Optional[float] = 60.0) -> Result:
    """
    Load the KV state at ``path`` into ``history`` when it matches; return ``(ok, reason)``.

    It must come from the same backend and model file, and its tokens must be a prefix of
    the chat's. Otherwise nothing changes and the reason says why (the chat is then simply
    prefilled again on its next reply).
    """
    snap, reason = read_snapshot(path, max_bytes)
    if snap is None:
        return False, reason
    if snap.backend != model.backend.name:
        return False, f"the KV state is from api='{snap.backend}', not '{model.backend.name}'"
    if snap.model != model_identity(model.config.path):
        return False, 'the KV state is from another model file'
    with history.lock:
        keys = history.render(add_generation_prompt=False).keys
        if not snap.keys or keys[:len(snap.keys)] != snap.keys:
            return False, ("the KV state's tokens are not the chat's (the chat changed since "
                           'it was saved)')
        try:
            state = model.submit(
                lambda: model.backend.restore_cache(snap.payload, len(snap.keys))).result(timeout)
        except Exception as error:  # noqa: BLE001 - a refused state is reported, not raised
            return False, f'the KV state could not be restored: {error}'
        cache = KVCache(model.backend, state)
        cache.keys = list(snap.keys)
        history.kv_cache = cache
    log.info('loaded the KV state of %d tokens from %s', len(snap.keys), path)
    return True, f'loaded {len(snap.keys)} tokens'

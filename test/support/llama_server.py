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
"""Run llama-cpp-python's OpenAI-compatible server on loopback (for ``api='openai'``)."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator
import urllib.request


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(model_path: str, n_threads: int = 2, n_ctx: int = 2048,
          timeout: float = 120.0) -> Iterator[str]:
    """
    Start ``python -m llama_cpp.server`` on a free loopback port; yield its base URL.

    Waits until ``/v1/models`` answers (RuntimeError with the server's log if it dies or
    ``timeout`` passes) and always stops the server on exit.
    """
    port = free_port()
    log = tempfile.TemporaryFile(mode='w+')
    process = subprocess.Popen(
        [sys.executable, '-m', 'llama_cpp.server', '--model', model_path,
         '--host', '127.0.0.1', '--port', str(port), '--n_ctx', str(n_ctx),
         '--n_threads', str(n_threads), '--n_threads_batch', str(n_threads)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + '/v1/models', timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f'llama_cpp.server did not come up at {base}:\n'
                                       + log.read()[-2000:])
                time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

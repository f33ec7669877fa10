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
Image cost in a chat: encode time, and time to first token with and without an image.

Measured in one run on a vision model (default: a tiny random-weight LLaVA built here,
or ``--model DIR`` for a real one): the image encoder alone, then TTFT of a fresh chat
with a text question vs the same question after an image. Writes JSON.

Usage: ``python3 benchmarks/vision.py [--model DIR] [--size 336] [--out FILE]``.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from ros2_nano_llm import ChatHistory, NanoLLM
import torch


def ttft(model, image=None, question='What is in the picture?'):
    """Return seconds from appending the turn to the first streamed piece."""
    history = ChatHistory(model)
    start = time.perf_counter()
    if image is not None:
        history.append('user', image=image)
    history.append('user', question)
    new, _ = history.embed_chat()
    stream = model.generate(new, kv_cache=history.kv_cache, max_new_tokens=4, min_new_tokens=4)
    next(iter(stream))
    elapsed = time.perf_counter() - start
    stream.wait()
    return elapsed


def main():
    """Run the benchmark, print it and write JSON."""
    p = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    p.add_argument('--model', default=None, help='vision model directory (default: tiny LLaVA)')
    p.add_argument('--size', type=int, default=336, help='test image side in pixels')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                 'vision.json'))
    args = p.parse_args()
    path = args.model
    if path is None:
        # the test-support package (test/support: tiny random-weight models)
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                        'test'))
        from support.tiny_vision import build_tiny_llava
        path = build_tiny_llava(tempfile.mkdtemp(prefix='tiny-llava-'))
    model = NanoLLM.from_pretrained(path)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    model.embed_image(image)  # warm up
    ttft(model), ttft(model, image)
    encode = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        rows = model.embed_image(image)
        encode.append(time.perf_counter() - start)
    text_only = [ttft(model) for _ in range(args.repeats)]
    with_image = [ttft(model, image) for _ in range(args.repeats)]
    result = {
        'model': model.name, 'device': str(model.backend.device),
        'torch_threads': torch.get_num_threads(), 'image_size': args.size,
        'image_embedding_rows': int(rows.shape[0]),
        'encode_ms': statistics.median(encode) * 1000,
        'ttft_text_ms': statistics.median(text_only) * 1000,
        'ttft_image_ms': statistics.median(with_image) * 1000,
    }
    result['ttft_image_over_text'] = result['ttft_image_ms'] / result['ttft_text_ms']
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'wrote {args.out}')
    model.close()


if __name__ == '__main__':
    main()

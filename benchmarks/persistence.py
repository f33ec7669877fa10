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
A chat on disk: what saving costs and what the first turn after a restart costs.

Measured in one run on the same model and a chat of about 2,000 tokens:

* the snapshot (the part of a save on the node's worker thread) and the write (JSON,
  fsync, rename: on the history file's own thread), each the median of ``--repeats``, and
  the JSON encoding alone (the part of the write that holds the GIL);
* the time to first token of a turn while the writer writes vs with no write (the delay a
  save can add to the next prompt), medians;
* loading the file, and the first turn after a restart (the loaded chat is prefilled once)
  against the same turn in the running chat (its KV cache reused).

Usage: ``python3 benchmarks/persistence.py [--model default] [--turns 20] [--out FILE]``.
"""

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time

from ros2_nano_llm import ChatHistory, ChatMessage, NanoLLM
from ros2_nano_llm.chat import storage
from ros2_nano_llm.ros.persistence import ChatFile
import torch

NEXT = 'Thank you. Now summarise everything we talked about in one sentence.'


def prompt(turn: int) -> str:
    """Return a user message of roughly 60 tokens."""
    return (f'Turn {turn + 1}. Tell me something new about topic number {turn + 1}: describe '
            'it in a few sentences, mention one surprising fact, and explain why people find '
            'it interesting. Keep the answer friendly, clear and suitable for a student.')


def build_chat(model, turns: int, reply_tokens: int) -> ChatHistory:
    """
    Return a chat of ``turns`` turns; replies are written, not generated (fast on a busy CPU).

    Each reply is ``reply_tokens`` token ids of real text, held as a bot turn's generated
    ids are; the cache then holds the whole chat, as after real turns.
    """
    history = ChatHistory(model)
    words = ('It is a fascinating subject with a long history, many surprising facts and '
             'plenty of open questions that curious students enjoy exploring further. ') * 8
    for turn in range(turns):
        history.append('user', prompt(turn))
        ids = [int(t) for t in model.tokenize(f'Answer {turn + 1}. ' + words)[:reply_tokens]]
        history.append('bot', ChatMessage('bot', text=model.detokenize(ids), tokens=ids))
    new, _ = history.embed_chat()  # fill the cache with the chat, as the turns would have
    tokens = model.generate(new, kv_cache=history.kv_cache, max_new_tokens=1)
    tokens.wait()
    print(f'{turns} turns: {history.num_tokens} tokens', flush=True)
    return history


def timed(fn, repeats: int):
    """Return (median seconds, samples) of ``fn()``."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def first_token(model, history, prompt_text: str) -> float:
    """Append ``prompt_text``, time its first token, then take the turn back out."""
    start = time.perf_counter()
    history.append('user', prompt_text)
    new, position = history.embed_chat()
    stream = model.generate(new, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                            max_new_tokens=1)
    next(iter(stream))
    ttft = time.perf_counter() - start
    stream.wait()
    history.pop(1)
    history.kv_cache.crop(position)
    return ttft


def ttft_while_writing(model, history, chat_file, repeats: int):
    """Median TTFT of the next turn with no write, and right after a save is triggered."""
    quiet, writing = [], []
    for _ in range(repeats):
        quiet.append(first_token(model, history, NEXT))
        chat_file.changed(history, 1)  # snapshot here, the write runs while the turn starts
        writing.append(first_token(model, history, NEXT))
        chat_file.flush(30.0)
    return statistics.median(quiet), statistics.median(writing), quiet, writing


def restart_ttft(model, path: str, repeats: int):
    """Median (load seconds, first-turn TTFT) of a new chat loaded from ``path``."""
    loads, ttfts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        history = ChatHistory(model)
        history.load(path)
        loads.append(time.perf_counter() - start)
        ttfts.append(first_token(model, history, NEXT))
    return statistics.median(loads), statistics.median(ttfts), loads, ttfts


def kv_state_restart(model, history, folder: str, path: str, repeats: int):
    """
    Option measured, not built: save the KV tensors too (hf) and restart from them.

    Returns the tensors file's size, its save time (write + fsync) and the median time from
    a new chat to the first token of the next turn, loading the chat file and the tensors.
    """
    from ros2_nano_llm.models.base import KVCache
    from safetensors.torch import load_file, save_file
    cache = history.kv_cache
    tensors = {'keys': torch.tensor(cache.keys, dtype=torch.int64)}
    for i, layer in enumerate(cache.state.layers):
        tensors[f'k{i}'], tensors[f'v{i}'] = layer.keys.contiguous(), layer.values.contiguous()
    kv_path = os.path.join(folder, 'chat.kv.safetensors')

    def save():
        save_file(tensors, kv_path)
        fd = os.open(kv_path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    def restart():
        start = time.perf_counter()
        restored = ChatHistory(model)
        restored.load(path)
        loaded = load_file(kv_path)
        state = model.backend.new_cache()
        for i in range(len(cache.state.layers)):
            state.update(loaded[f'k{i}'], loaded[f'v{i}'], i)
        restored.kv_cache = KVCache(model.backend, state)
        restored.kv_cache.keys = loaded['keys'].tolist()
        setup = time.perf_counter() - start
        return setup + first_token(model, restored, NEXT)

    save_s, _ = timed(save, 3)
    size = os.path.getsize(kv_path)
    total = statistics.median(restart() for _ in range(repeats))
    return size, save_s, total


def main():
    """Run the benchmark, print it and write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='default')
    p.add_argument('--turns', type=int, default=21)
    p.add_argument('--reply-tokens', type=int, default=40)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--dir', default=None, help='folder for the chat file (default: a temp one '
                   'under the working directory, on the disk a robot would use)')
    p.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                 'persistence.json'))
    args = p.parse_args()
    model = NanoLLM.from_pretrained(args.model)
    model.generate(prompt(0) * 3, max_new_tokens=4, streaming=False)  # warm up
    history = build_chat(model, args.turns, args.reply_tokens)
    chat_tokens = len(history.render(add_generation_prompt=False))
    folder = tempfile.mkdtemp(prefix='persistence-', dir=args.dir or os.getcwd())
    path = os.path.join(folder, 'chat.json')
    snapshot_s, snapshot_all = timed(lambda: storage.snapshot(history, {'turn_id': 1}),
                                     args.repeats)
    snap = storage.snapshot(history, {'turn_id': 1})
    write_s, write_all = timed(lambda: storage.write(snap, path), args.repeats)
    # the part of a write that holds the GIL (the rest is I/O, which releases it)
    encode_s, _ = timed(lambda: json.dumps(snap.doc, ensure_ascii=False,
                                           separators=(',', ':')).encode(), args.repeats)
    chat_file = ChatFile(path, logging.getLogger('persistence'))
    quiet, writing, quiet_all, writing_all = ttft_while_writing(
        model, history, chat_file, args.repeats)
    chat_file.close(30.0)
    warm = statistics.median(first_token(model, history, NEXT) for _ in range(args.repeats))
    load_s, restart, load_all, restart_all = restart_ttft(model, path, max(3, args.repeats // 2))
    kv_bytes, kv_save_s, kv_restart = kv_state_restart(model, history, folder, path,
                                                       max(3, args.repeats // 2))
    summary = {
        'model': model.name, 'api': model.api, 'torch_threads': torch.get_num_threads(),
        'machine': platform.machine(), 'cpu_count': os.cpu_count(),
        'chat_tokens': chat_tokens, 'chat_entries': len(history),
        'file_bytes': os.path.getsize(path), 'repeats': args.repeats,
        'snapshot_ms': 1000 * snapshot_s, 'write_ms': 1000 * write_s,
        'write_encode_ms': 1000 * encode_s,
        'ttft_no_write_ms': 1000 * quiet, 'ttft_during_write_ms': 1000 * writing,
        'save_delay_on_next_ttft_ms': 1000 * (writing - quiet),
        'load_ms': 1000 * load_s,
        'ttft_running_chat_ms': 1000 * warm,
        'ttft_first_turn_after_restart_ms': 1000 * restart,
        'restart_over_running': restart / warm,
        'load_then_first_token_ms': 1000 * (load_s + restart),
        'with_kv_state': {'kv_file_bytes': kv_bytes, 'kv_save_ms': 1000 * kv_save_s,
                          'load_then_first_token_ms': 1000 * kv_restart,
                          'speedup_over_without': (load_s + restart) / kv_restart},
        'samples_ms': {k: [1000 * x for x in v] for k, v in (
            ('snapshot', snapshot_all), ('write', write_all), ('ttft_no_write', quiet_all),
            ('ttft_during_write', writing_all), ('load', load_all),
            ('ttft_after_restart', restart_all))},
    }
    print(json.dumps({k: v for k, v in summary.items() if k != 'samples_ms'}, indent=2))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'wrote {args.out}')
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)
    model.close()


if __name__ == '__main__':
    main()

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
TTFT per turn on llama_cpp against llama.cpp's own loop, and the first turn after a restart.

The embedded SmolLM2 grows a chat to ``--tokens`` tokens with greedy replies of
``--reply`` tokens. Each turn's time to first token through ``ChatHistory`` is set against
``llama_cpp.Llama.generate`` on the same rendered token ids (it reuses its longest cached
prefix by itself), in the same run; so is the decode rate. Then the chat is saved, and the
first turn on a new model object is timed warm (KV state loaded), cold (re-prefill) and
against a cached turn. Prints and saves JSON (benchmarks/results/ttft.json).

    python3 benchmarks/ttft.py --threads 2
"""

import argparse
import json
import os
import tempfile
import time

import llama_cpp
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models.cache_file import load_state, save_state
from ros2_nano_llm.models.loading import default_model_path

TOPICS = ['robots', 'the sea', 'mountains', 'cooking', 'music', 'trains', 'gardens', 'stars',
          'rivers', 'bridges', 'birds', 'clocks', 'maps', 'bicycles', 'libraries', 'deserts',
          'forests', 'castles', 'islands', 'volcanoes', 'ships', 'bees', 'kites', 'lamps']


def ours(model, history, reply):
    """Run one greedy turn through the chat; return (ttft s, decode tok/s, reply stream)."""
    new, _ = history.embed_chat()
    start = time.perf_counter()
    out = model.generate(new, kv_cache=history.kv_cache, max_new_tokens=reply,
                         min_new_tokens=reply, stop_tokens=history.stop_tokens)
    first = None
    for _ in out:
        if first is None:
            first = time.perf_counter() - start
    return first, model.stats['decode_rate'], out


def theirs(llm, tokens, reply):
    """Run ``Llama.generate`` greedily on ``tokens``; return (ttft s, decode tok/s)."""
    start = time.perf_counter()
    first, n = None, 0
    for _ in llm.generate(tokens, top_k=1, temp=0.0):
        n += 1
        if first is None:
            first = time.perf_counter()
        if n == reply:
            break
    end = time.perf_counter()
    return first - start, (n - 1) / (end - first)


def main():
    """Run the benchmark and save its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--tokens', type=int, default=2000)
    parser.add_argument('--reply', type=int, default=100)
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                      'ttft.json'))
    args = parser.parse_args()
    opts = {'n_threads': args.threads, 'n_ctx': 4096}
    model = NanoLLM.from_pretrained('default', api='llama_cpp', **opts)
    llm = llama_cpp.Llama(default_model_path(), n_threads=args.threads, n_ctx=4096,
                          verbose=False)
    history = ChatHistory(model)
    turns = []
    for i, topic in enumerate(TOPICS):
        history.append('user', f'Tell me a long story about {topic}, in detail.')
        tokens = history.render().tokens
        t_ours, rate_ours, out = ours(model, history, args.reply)
        t_lib, rate_lib = theirs(llm, tokens, args.reply)
        history.append('bot', out)
        row = {'turn': i + 1, 'history_tokens': len(tokens), 'ttft_s': t_ours,
               'llama_generate_ttft_s': t_lib, 'ttft_ratio': t_ours / t_lib,
               'decode_rate': rate_ours, 'llama_generate_decode_rate': rate_lib,
               'decode_ratio': rate_ours / rate_lib}
        print(json.dumps(row))
        turns.append(row)
        if len(tokens) >= args.tokens:
            break
    folder = tempfile.mkdtemp()
    chat_file = os.path.join(folder, 'chat.json')
    history.save(chat_file)
    saved_tokens = len(history.kv_cache)
    ok, reason = save_state(model, history, chat_file + '.kv')
    assert ok, reason
    state_bytes = os.path.getsize(chat_file + '.kv')
    history.append('user', 'And one more about lighthouses.')
    cached, _, out = ours(model, history, 8)
    history.pop()
    model.close()
    restart = {}
    for kind in ('cold', 'warm'):
        model = NanoLLM.from_pretrained('default', api='llama_cpp', **opts)
        again = ChatHistory(model)
        again.load(chat_file)
        load_s = 0.0
        if kind == 'warm':
            start = time.perf_counter()
            ok, reason = load_state(model, again, chat_file + '.kv')
            load_s = time.perf_counter() - start
            assert ok, reason
        again.append('user', 'And one more about lighthouses.')
        ttft, _, _ = ours(model, again, 8)
        restart[kind] = {'ttft_s': ttft, 'state_load_s': load_s}
        model.close()
    result = {
        'threads': args.threads, 'load_average': os.getloadavg(), 'turns': turns,
        'max_ttft_ratio': max(r['ttft_ratio'] for r in turns),
        'ttft_growth': turns[-1]['ttft_s'] / turns[0]['ttft_s'],
        'llama_generate_ttft_growth': turns[-1]['llama_generate_ttft_s'] /
        turns[0]['llama_generate_ttft_s'],
        'min_decode_ratio': min(r['decode_ratio'] for r in turns),
        'mean_decode_ratio': sum(r['decode_ratio'] for r in turns) / len(turns),
        'restart': {**restart, 'cached_ttft_s': cached,
                    'warm_vs_cached': restart['warm']['ttft_s'] / cached,
                    'cold_vs_cached': restart['cold']['ttft_s'] / cached,
                    'cold_vs_warm': restart['cold']['ttft_s'] / restart['warm']['ttft_s'],
                    'saved_tokens': saved_tokens, 'state_bytes': state_bytes,
                    'state_bytes_per_1000_tokens': state_bytes * 1000 / saved_tokens}}
    print(json.dumps({k: v for k, v in result.items() if k != 'turns'}, indent=1))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()

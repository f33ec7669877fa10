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
prefix by itself), in the same run: ``--repeats`` times per turn, the two sides interleaved
(order alternating), the cache put back between repeats; the medians and the median of the
pairwise ratios are kept. Then both sides run the turn's whole reply (decode rates). Each
turn also times a recompute (the whole chat prefilled into an empty cache) and, with
``--hf``, the same user messages through the project on api='hf' (its own replies).

What each loop adds over llama.cpp's compute is read from llama.cpp's own counters
(``llama_perf_context``: time inside ``llama_decode``): per reply, TTFT minus the prefill's
compute; per token, the reply's time minus its compute, over its tokens.

Both models are warmed up first the way llama.cpp's own tools do (one token run and
dropped): ours does it at load, the baseline gets one short generate. Then the chat is
saved, and the first turn on a new model object is timed warm (KV state loaded), cold
(re-prefill) and against a cached turn. Prints and saves JSON (benchmarks/results/ttft.json)
and its plots (``ttft_ttft.png``, ``ttft_decode.png``, benchmarks/plots.py).

    python3 benchmarks/ttft.py --threads 2
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import llama_cpp
from plots import ttft_plots
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models.cache_file import load_state, save_state
from ros2_nano_llm.models.loading import default_model_path

TOPICS = ['robots', 'the sea', 'mountains', 'cooking', 'music', 'trains', 'gardens', 'stars',
          'rivers', 'bridges', 'birds', 'clocks', 'maps', 'bicycles', 'libraries', 'deserts',
          'forests', 'castles', 'islands', 'volcanoes', 'ships', 'bees', 'kites', 'lamps']


def compute_s(ctx):
    """Return the seconds llama.cpp has spent inside ``llama_decode`` on ``ctx``."""
    perf = llama_cpp.llama_perf_context(ctx)
    return (perf.t_p_eval_ms + perf.t_eval_ms) / 1000


class Ours:
    """The project's chat on api='llama_cpp' (or 'hf'): one turn at a time."""

    def __init__(self, model):
        self.model = model
        self.ctx = model.backend._c.ctx if model.api == 'llama_cpp' else None

    def compute(self):
        """Return llama.cpp's compute seconds so far (0 on hf)."""
        return compute_s(self.ctx) if self.ctx is not None else 0.0

    def first_token(self, history, new):
        """Time one token of the turn, then put the cache back; return (ttft, overhead)."""
        held = len(history.kv_cache)
        before = self.compute()
        start = time.perf_counter()
        out = self.model.generate(new, kv_cache=history.kv_cache, max_new_tokens=1,
                                  stop_tokens=history.stop_tokens)
        next(iter(out))
        ttft = time.perf_counter() - start
        out.wait()
        overhead = ttft - (self.compute() - before)
        history.kv_cache.crop(held)
        return ttft, overhead

    def reply(self, history, new, n):
        """Run the turn's whole reply; return (ttft, decode tok/s, per-token overhead, out)."""
        before = self.compute()
        start = time.perf_counter()
        out = self.model.generate(new, kv_cache=history.kv_cache, max_new_tokens=n,
                                  min_new_tokens=n, stop_tokens=history.stop_tokens)
        first = None
        for _ in out:
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        count = len(out.tokens)
        per_token = ((end - start) - (self.compute() - before)) / count
        return first - start, (count - 1) / (end - first), per_token, out

    def recompute(self, history):
        """Time the first token of the whole chat prefilled into an empty cache."""
        start = time.perf_counter()
        out = self.model.generate(history.render(), kv_cache=self.model.new_cache(),
                                  max_new_tokens=1, stop_tokens=history.stop_tokens)
        next(iter(out))
        ttft = time.perf_counter() - start
        out.wait()
        return ttft


class Theirs:
    """``Llama.generate`` on the same tokens, its prefix cache put back between repeats."""

    def __init__(self, threads, n_ctx):
        self.llm = llama_cpp.Llama(default_model_path(), n_threads=threads,
                                   n_threads_batch=threads, n_ctx=n_ctx, verbose=False)
        self.ctx = self.llm._ctx.ctx
        for _ in self.llm.generate([1, 2], top_k=1, temp=0.0):
            break  # warm up, as llama.cpp's tools do
        self.llm.reset()
        self.held = 0  # what its cache holds after the previous turn's reply

    def first_token(self, tokens):
        """Time the first token of ``tokens``; return (ttft, overhead)."""
        self.llm.n_tokens = self.held
        before = compute_s(self.ctx)
        start = time.perf_counter()
        tokens_out = self.llm.generate(tokens, top_k=1, temp=0.0)
        next(tokens_out)
        ttft = time.perf_counter() - start
        tokens_out.close()
        return ttft, ttft - (compute_s(self.ctx) - before)

    def reply(self, tokens, n):
        """Run ``n`` tokens of reply; return (ttft, decode tok/s, per-token overhead)."""
        self.llm.n_tokens = self.held
        before = compute_s(self.ctx)
        start = time.perf_counter()
        first, count = None, 0
        for _ in self.llm.generate(tokens, top_k=1, temp=0.0):
            count += 1
            if first is None:
                first = time.perf_counter()
            if count == n:
                break
        end = time.perf_counter()
        self.held = self.llm.n_tokens
        per_token = ((end - start) - (compute_s(self.ctx) - before)) / count
        return first - start, (count - 1) / (end - first), per_token


def llama_turn(ours, theirs, history, repeats, reply):
    """Measure one turn on both sides, interleaved; return its row and our reply."""
    new, _ = history.embed_chat()
    tokens = history.render().tokens
    samples = {'llama_cpp': [], 'llama_generate': []}
    for i in range(repeats):
        order = ('ours', 'theirs') if i % 2 == 0 else ('theirs', 'ours')
        for side in order:
            if side == 'ours':
                samples['llama_cpp'].append(ours.first_token(history, new))
            else:
                samples['llama_generate'].append(theirs.first_token(tokens))
    t_ours, rate_ours, tok_ours, out = ours.reply(history, new, reply)
    t_lib, rate_lib, tok_lib = theirs.reply(tokens, reply)
    samples['llama_cpp'].append((t_ours, None))
    samples['llama_generate'].append((t_lib, None))
    row = {'history_tokens': len(tokens), 'prefilled_tokens': len(new)}
    for name, per_token, rate in (('llama_cpp', tok_ours, rate_ours),
                                  ('llama_generate', tok_lib, rate_lib)):
        ttfts = [t for t, _ in samples[name]]
        row[name] = {'ttft_s': statistics.median(ttfts), 'ttft_samples_s': ttfts,
                     'reply_overhead_ms': 1000 * statistics.median(
                         o for _, o in samples[name] if o is not None),
                     'token_overhead_ms': 1000 * per_token, 'decode_rate': rate}
    pairs = [a / b for (a, _), (b, _) in zip(samples['llama_cpp'], samples['llama_generate'])]
    row['ttft_ratio'] = statistics.median(pairs)
    row['ttft_ratio_samples'] = pairs
    row['decode_ratio'] = rate_ours / rate_lib
    return row, out


def hf_turn(model, history, reply):
    """Run one turn on api='hf' (its own chat); return its record."""
    new, position = history.embed_chat()
    ttft, rate, _, out = Ours(model).reply(history, new, reply)
    history.append('bot', out)
    return {'history_tokens': position + len(new), 'ttft_s': ttft, 'decode_rate': rate}


def first_tokens(model, history, message, repeats):
    """Time the first token of ``message`` after ``history``, ``repeats`` times (seconds)."""
    history.append('user', message)
    new, _ = history.embed_chat()
    ours = Ours(model)
    return [ours.first_token(history, new)[0] for _ in range(repeats)]


def restarts(model, history, opts, repeats):
    """Time the next turn cached, then on new model objects warm and cold; close ``model``."""
    folder = tempfile.mkdtemp()
    chat_file = os.path.join(folder, 'chat.json')
    history.save(chat_file)
    saved_tokens = len(history.kv_cache)
    ok, reason = save_state(model, history, chat_file + '.kv')
    assert ok, reason
    state_bytes = os.path.getsize(chat_file + '.kv')
    message = 'And one more about lighthouses.'
    cached = statistics.median(first_tokens(model, history, message, repeats))
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
        # the first turn after the restart (then again, cache put back: warm only, cold is slow)
        samples = first_tokens(model, again, message, repeats if kind == 'warm' else 1)
        restart[kind] = {'ttft_s': samples[0], 'ttft_samples_s': samples,
                         'state_load_s': load_s}
        model.close()
    return cached, restart, saved_tokens, state_bytes


def main():
    """Run the benchmark, save its JSON and draw its plots."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--tokens', type=int, default=2000)
    parser.add_argument('--reply', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=9, help='TTFT samples per side and turn')
    parser.add_argument('--hf', action=argparse.BooleanOptionalAction, default=True,
                        help='also run the chat on api=hf')
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                      'ttft.json'))
    args = parser.parse_args()
    opts = {'n_threads': args.threads, 'n_ctx': 4096}
    loads = [os.getloadavg()[0]]
    model = NanoLLM.from_pretrained('default', api='llama_cpp', **opts)
    ours, theirs = Ours(model), Theirs(args.threads, 4096)
    hf = hf_history = None
    if args.hf:
        import torch
        torch.set_num_threads(args.threads)
        hf = NanoLLM.from_pretrained('default', api='hf')
        hf_history = ChatHistory(hf)
    history = ChatHistory(model)
    turns = []
    for i, topic in enumerate(TOPICS):
        message = f'Tell me a long story about {topic}, in detail.'
        history.append('user', message)
        row, out = llama_turn(ours, theirs, history, args.repeats, args.reply)
        row = {'turn': i + 1, **row, 'recompute': {'ttft_s': ours.recompute(history)}}
        history.append('bot', out)
        if hf is not None:
            hf_history.append('user', message)
            row['hf'] = hf_turn(hf, hf_history, args.reply)
        loads.append(os.getloadavg()[0])
        row['load_average'] = loads[-1]
        print(json.dumps({k: v for k, v in row.items() if k != 'ttft_ratio_samples'}),
              flush=True)
        turns.append(row)
        if row['history_tokens'] >= args.tokens:
            break
    if hf is not None:
        hf.close()
    theirs.llm.close()
    cached, restart, saved_tokens, state_bytes = restarts(model, history, opts, args.repeats)
    first, last = turns[0], turns[-1]
    ours_rows = [r['llama_cpp'] for r in turns]
    lib_rows = [r['llama_generate'] for r in turns]
    result = {
        'threads': args.threads, 'reply_tokens': args.reply, 'repeats': args.repeats,
        'cpus': len(os.sched_getaffinity(0)),
        # other processes on the machine: the 1-minute load average at each turn's end
        'load_average_during_run': statistics.mean(loads),
        'load_average_range': [min(loads), max(loads)],
        'turns': turns,
        'max_ttft_ratio': max(r['ttft_ratio'] for r in turns),
        'median_ttft_ratio': statistics.median(r['ttft_ratio'] for r in turns),
        'ttft_growth': last['llama_cpp']['ttft_s'] / first['llama_cpp']['ttft_s'],
        'llama_generate_ttft_growth': (last['llama_generate']['ttft_s'] /
                                       first['llama_generate']['ttft_s']),
        'growth_tokens': [first['history_tokens'], last['history_tokens']],
        'min_decode_ratio': min(r['decode_ratio'] for r in turns),
        'median_decode_ratio': statistics.median(r['decode_ratio'] for r in turns),
        'overhead_ms': {
            name: {'per_reply': statistics.median(r['reply_overhead_ms'] for r in rows),
                   'per_token': statistics.median(r['token_overhead_ms'] for r in rows)}
            for name, rows in (('llama_cpp', ours_rows), ('llama_generate', lib_rows))},
        'targets': {'max_ttft_ratio <=': 1.1, 'ttft_growth <=': 1.5,
                    'median_decode_ratio >=': 0.95, 'warm_vs_cached <=': 1.5},
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
    print('\n'.join(ttft_plots(result, args.out)))


if __name__ == '__main__':
    main()

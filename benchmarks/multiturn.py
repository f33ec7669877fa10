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
Multi-turn chat speed: the KV cache kept across turns vs recomputing the chat each turn.

Measured in one run on the same model and chat:

* time to first token (TTFT) of each of N turns with the cache reused (the median of
  ``--ttft-repeats`` timings, the cache cropped back between them), and of a
  from-scratch prefill of the same chat at the same turn (the baseline);
* decode tokens/s seen through ``StreamingResponse`` vs a plain transformers loop
  (forward + argmax with a ``DynamicCache``) over the same prompt.

Usage: ``python3 benchmarks/multiturn.py [--model default] [--turns 20] [--out FILE]``.
"""

import argparse
import json
import os
import platform
import statistics
import time

from ros2_nano_llm import ChatHistory, NanoLLM
import torch

TOPICS = ['the ocean', 'mountains', 'robots', 'the moon', 'rivers', 'bicycles', 'gardens',
          'trains', 'volcanoes', 'libraries', 'bridges', 'forests', 'deserts', 'clocks',
          'music', 'bees', 'lighthouses', 'glaciers', 'kites', 'maps']


def prompt(turn: int) -> str:
    """Return a user message of roughly 60 tokens."""
    topic = TOPICS[turn % len(TOPICS)]
    return (f'Turn {turn + 1}. I would like to learn something new about {topic}. Please '
            f'describe {topic} in a few sentences, mention one surprising fact about {topic}, '
            'and explain why people find it interesting. Keep the answer friendly, clear and '
            'suitable for a curious student who is reading about it for the first time.')


def first_token_time(model, inputs, cache, reply_tokens, **kwargs):
    """Return (seconds to the first streamed piece, the stream)."""
    start = time.perf_counter()
    stream = model.generate(inputs, kv_cache=cache, max_new_tokens=reply_tokens,
                            min_new_tokens=reply_tokens, **kwargs)
    next(iter(stream))
    ttft = time.perf_counter() - start
    stream.wait()
    return ttft, stream


def cached_turn(model, history, reply_tokens: int, repeats: int):
    """
    Time the turn's first token with the chat's cache ``repeats`` times; return the median.

    Every repeat but the last is stopped after its first token and the cache is cropped
    back to where the turn starts, so each repeat prefills exactly the same new tokens; the
    last one generates the whole reply, which joins the chat.
    """
    times, stream = [], None
    for repeat in range(repeats):
        start = time.perf_counter()
        new, position = history.embed_chat()
        stream = model.generate(new, kv_cache=history.kv_cache, max_new_tokens=reply_tokens,
                                min_new_tokens=reply_tokens, stop_tokens=history.stop_tokens)
        next(iter(stream))
        times.append(time.perf_counter() - start)
        if repeat < repeats - 1:
            stream.stop()
            stream.wait()
            history.kv_cache.crop(position)
    stream.wait()
    return statistics.median(times), times, new, position, stream


def multiturn(model, turns: int, reply_tokens: int, repeats: int):
    """Run ``turns`` cached turns; at each, also time a from-scratch prefill of the chat."""
    history = ChatHistory(model)
    rows = []
    for turn in range(turns):
        history.append('user', prompt(turn))
        # baseline: the whole chat from an empty cache (history untouched)
        full = history._render()
        recompute_ttft, _ = first_token_time(model, full, model.new_cache(), 1)
        cached_ttft, samples, new, position, stream = cached_turn(model, history, reply_tokens,
                                                                  repeats)
        history.append('bot', stream)
        rows.append({'turn': turn + 1, 'chat_tokens': len(full), 'new_tokens': len(new),
                     'position': position, 'ttft_cached_s': cached_ttft,
                     'ttft_cached_samples_s': samples, 'ttft_recompute_s': recompute_ttft,
                     'speedup': recompute_ttft / cached_ttft})
        print(f'turn {turn + 1:2d}  chat {len(full):5d} tok  prefill {len(new):4d} tok  '
              f'TTFT cached {cached_ttft * 1000:7.1f} ms  '
              f'recompute {recompute_ttft * 1000:7.1f} ms  x{recompute_ttft / cached_ttft:5.1f}',
              flush=True)
    return rows


@torch.inference_mode()
def plain_loop_rate(model, ids, n):
    """Tokens/s of forward + argmax with a DynamicCache (the backend's raw decode rate)."""
    from transformers import DynamicCache
    hf = model.backend.model
    cache = DynamicCache(config=hf.config)
    logits = hf(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True,
                logits_to_keep=1).logits[0, -1]
    token = int(torch.argmax(logits))
    start = time.perf_counter()
    for _ in range(n - 1):
        logits = hf(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True,
                    logits_to_keep=1).logits[0, -1]
        token = int(torch.argmax(logits))
    return (n - 1) / (time.perf_counter() - start)


def streaming_rate(model, ids, n):
    """Tokens/s seen by a reader iterating a StreamingResponse (first to last token)."""
    stream = model.generate(ids, max_new_tokens=n, min_new_tokens=n)
    pieces = iter(stream)
    next(pieces)
    start, count = time.perf_counter(), len(stream.tokens)
    for _ in pieces:
        pass
    return (len(stream.tokens) - count) / (time.perf_counter() - start)


def decode_rates(model, n: int, repeats: int):
    """Median decode rates of the plain loop and of streaming, interleaved."""
    ids = model.tokenize('Write a long story about a robot who learns to paint.').tolist()
    plain, ours = [], []
    for _ in range(repeats):
        plain.append(plain_loop_rate(model, ids, n))
        ours.append(streaming_rate(model, ids, n))
    return statistics.median(plain), statistics.median(ours), plain, ours


def main():
    """Run the benchmark, print it and write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='default')
    p.add_argument('--turns', type=int, default=20)
    p.add_argument('--reply-tokens', type=int, default=48)
    p.add_argument('--decode-tokens', type=int, default=64)
    p.add_argument('--repeats', type=int, default=3, help='decode-rate runs (median)')
    p.add_argument('--attention', choices=['packed', 'sdpa'], default='packed',
                   help="hf on CPU: the backend's GQA-packed attention or transformers' sdpa")
    p.add_argument('--ttft-repeats', type=int, default=5,
                   help='cached first-token timings per turn (median)')
    p.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                 'multiturn.json'))
    args = p.parse_args()
    # hf: the plain loop it compares with is transformers' forward + argmax
    model = NanoLLM.from_pretrained(args.model, api='hf')
    if args.attention == 'sdpa':
        model.backend.model.set_attn_implementation('sdpa')  # transformers' own, for comparison
    # warm up the kernels for both prompt and single-token shapes
    model.generate(prompt(0) * 3, max_new_tokens=8, streaming=False)
    rows = multiturn(model, args.turns, args.reply_tokens, args.ttft_repeats)
    plain, ours, plain_all, ours_all = decode_rates(model, args.decode_tokens, args.repeats)
    first, last = rows[0], rows[-1]
    summary = {
        'model': model.name, 'api': model.api,
        'attention': getattr(model.backend.model.config, '_attn_implementation', None),
        'torch_threads': torch.get_num_threads(),
        'machine': platform.machine(), 'cpu_count': os.cpu_count(),
        'turns': args.turns, 'ttft_repeats': args.ttft_repeats,
        'final_chat_tokens': last['chat_tokens'],
        'ttft_turn1_s': first['ttft_cached_s'], 'ttft_last_s': last['ttft_cached_s'],
        'ttft_last_over_turn1': last['ttft_cached_s'] / first['ttft_cached_s'],
        'recompute_over_cached_at_last_turn': last['speedup'],
        'decode_rate_plain_loop_tok_s': plain, 'decode_rate_streaming_tok_s': ours,
        'streaming_over_plain_loop': ours / plain,
        'decode_rate_samples': {'plain_loop': plain_all, 'streaming': ours_all},
        'targets': {'ttft_last_over_turn1 <=': 1.5, 'recompute_over_cached >=': 10,
                    'streaming_over_plain_loop >=': 0.95},
    }
    summary['meets_targets'] = {
        'ttft_growth': summary['ttft_last_over_turn1'] <= 1.5,
        'cache_speedup': summary['recompute_over_cached_at_last_turn'] >= 10
        and summary['final_chat_tokens'] >= 2000,
        'streaming_rate': summary['streaming_over_plain_loop'] >= 0.95}
    print(json.dumps({k: v for k, v in summary.items() if k != 'decode_rate_samples'},
                     indent=2))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump({'summary': summary, 'turns': rows}, f, indent=2)
    print(f'wrote {args.out}')
    model.close()


if __name__ == '__main__':
    main()

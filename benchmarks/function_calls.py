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
How often a model calls a bot function when a plain request asks for one.

Each of N plain requests ("Please turn on the headlights.", "What time is it?", ...) goes
to a fresh chat whose system prompt holds the docs of ``TIME``, ``DATE`` and a
``set_headlights(on: bool)`` Python function that records its calls. The reply is
generated greedily, then sampled (seeded, so a run repeats). Counted per reply: a call
detected (the library found one and ran it), a call that ran without error (its
arguments bound), and a right call (the function the request needs, without error).
No ROS needed.

Usage: ``python3 benchmarks/function_calls.py [--model default] [--n 10]
[--max-new-tokens 48] [--out benchmarks/results/function_calls.json]``.
"""

import argparse
import json
import os
import platform
import time

from ros2_nano_llm import bot_function, BotFunctions, ChatHistory, NanoLLM

SYSTEM_PROMPT = 'You are the assistant of a small robot. You control it by calling functions.'
# (request, the function it needs)
REQUESTS = [
    ('Please turn on the headlights.', 'set_headlights'),
    ('What time is it?', 'TIME'),
    ("What's the date today?", 'DATE'),
    ('Turn off the headlights.', 'set_headlights'),
    ('Can you tell me the current time?', 'TIME'),
    ("It's dark in here, switch the lights on.", 'set_headlights'),
    ('Which day is it today?', 'DATE'),
    ('Lights off, please.', 'set_headlights'),
    ('What is the time right now?', 'TIME'),
    ('I cannot see anything. Headlights on, please.', 'set_headlights'),
]
HEADLIGHT_CALLS = []


@bot_function(arg_docs={'on': 'True to switch them on, False for off'})
def set_headlights(on: bool) -> str:
    """Turn the robot's headlights on or off."""
    HEADLIGHT_CALLS.append(on)
    return f"headlights {'on' if on else 'off'}"


def ask(model, functions, request: str, max_new_tokens: int, **sampling) -> dict:
    """Send one request to a fresh chat; return what the reply did."""
    history = ChatHistory(model, system_prompt=SYSTEM_PROMPT, tools=functions)
    history.append('user', request)
    inputs, _ = history.embed_chat()
    start = time.perf_counter()
    reply = model.generate(inputs, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                           functions=functions, template=history.template,
                           max_new_tokens=max_new_tokens, **sampling)
    text = reply.wait()
    return {'reply': text, 'seconds': round(time.perf_counter() - start, 2),
            'calls': [{'name': c.call.name, 'raw': c.call.raw, 'result': c.result}
                      for c in reply.calls]}


def run(model, n: int, max_new_tokens: int) -> dict:
    """Ask the first ``n`` requests greedily and sampled; return the counts and the rows."""
    functions = [BotFunctions.find(name) for name in ('set_headlights', 'TIME', 'DATE')]
    modes = {'greedy': {'do_sample': False},
             'sampled': {'do_sample': True, 'temperature': 0.7, 'top_p': 0.95}}
    requests = [REQUESTS[i % len(REQUESTS)] for i in range(n)]
    out = {}
    for mode, sampling in modes.items():
        rows = []
        for i, (request, wanted) in enumerate(requests):
            seed = {'seed': i} if sampling['do_sample'] else {}
            row = ask(model, functions, request, max_new_tokens, **sampling, **seed)
            row.update(request=request, wanted=wanted)
            rows.append(score(row))
            print(f"[{mode} {i + 1}/{n}] {request!r} -> {row['reply']!r} "
                  f"calls={[c['raw'] for c in row['calls']]}", flush=True)
        out[mode] = totals(rows)
    return out


def score(row: dict) -> dict:
    """Mark one reply: a call detected, one that ran without error, the right one."""
    good = [c for c in row['calls'] if not c['result'].startswith('error:')]
    row.update(called=bool(row['calls']), called_ok=bool(good),
               called_wanted=any(c['name'] == row['wanted'] for c in good))
    return row


def totals(rows: list) -> dict:
    """Return the counts over the scored rows (and the rows)."""
    return {'requests': len(rows), **{key: sum(r[key] for r in rows) for key in (
        'called', 'called_ok', 'called_wanted')}, 'rows': rows}


def summary_line(counts: dict) -> str:
    """Return e.g. '4/10 replies made a call, 0/10 without error, 0/10 the right one'."""
    n = counts['requests']
    return (f"{counts['called']}/{n} replies made a call, {counts['called_ok']}/{n} without "
            f"error, {counts['called_wanted']}/{n} the right one")


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='default')
    parser.add_argument('--n', type=int, default=10, help='requests per mode')
    parser.add_argument('--max-new-tokens', type=int, default=48)
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                      'function_calls.json'))
    args = parser.parse_args()
    model = NanoLLM.from_pretrained(args.model)
    try:
        docs = BotFunctions.generate_docs(functions=[
            BotFunctions.find(name) for name in ('set_headlights', 'TIME', 'DATE')])
        results = run(model, args.n, args.max_new_tokens)
    finally:
        model.close()
    summary = {mode: summary_line(counts) for mode, counts in results.items()}
    report = {'model': model.name, 'max_new_tokens': args.max_new_tokens,
              'system_prompt': SYSTEM_PROMPT, 'function_docs': docs,
              'machine': f'{platform.machine()}, {os.cpu_count()} CPUs',
              'summary': summary, 'headlight_calls': HEADLIGHT_CALLS, **results}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    for mode, line in summary.items():
        print(f'{model.name} {mode}: {line}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()

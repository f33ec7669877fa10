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
How often a model calls a bot function when a plain request asks for one, free and constrained.

Each of N plain requests ("Please turn on the headlights.", "What time is it?", ...) goes
to a fresh chat whose system prompt holds the docs of ``TIME``, ``DATE`` and a
``set_headlights(on: bool)`` Python function that records its calls. Each mode answers
them greedily, then sampled (seeded, so a run repeats):

* ``free``: calls found in free text, no grammar (the library before constrained decoding;
  ``model.grammars.enabled = False``);
* ``auto``: ``tool_choice='auto'``: free text, a call the model starts is completed validly;
* ``required``: ``tool_choice='required'``: the reply starts with a call of a listed function.

Counted per reply: a call made (the library found one and ran it), a call that ran without
error (it names a listed function and its arguments bind), the right function, and the
right function with the right arguments. The decode rate of each mode and the time the
grammar took per token are measured in the same run; the cost of the constraint is the
grammar's share of the decode time. No ROS needed.

Usage: ``python3 benchmarks/function_calls.py [--model default] [--api hf] [--threads N]
[--n 10] [--max-new-tokens 48] [--out benchmarks/results/function_calls.json]``.
"""

import argparse
import json
import os
import platform
import statistics
import time

from ros2_nano_llm import bot_function, BotFunctions, ChatHistory, NanoLLM

SYSTEM_PROMPT = 'You are the assistant of a small robot. You control it by calling functions.'
# (request, the function it needs, the arguments it needs)
REQUESTS = [
    ('Please turn on the headlights.', 'set_headlights', {'on': True}),
    ('What time is it?', 'TIME', {}),
    ("What's the date today?", 'DATE', {}),
    ('Turn off the headlights.', 'set_headlights', {'on': False}),
    ('Can you tell me the current time?', 'TIME', {}),
    ("It's dark in here, switch the lights on.", 'set_headlights', {'on': True}),
    ('Which day is it today?', 'DATE', {}),
    ('Lights off, please.', 'set_headlights', {'on': False}),
    ('What is the time right now?', 'TIME', {}),
    ('I cannot see anything. Headlights on, please.', 'set_headlights', {'on': True}),
]
MODES = ('free', 'auto', 'required')
HEADLIGHT_CALLS = []


@bot_function(arg_docs={'on': 'True to switch them on, False for off'})
def set_headlights(on: bool) -> str:
    """Turn the robot's headlights on or off."""
    HEADLIGHT_CALLS.append(on)
    return f"headlights {'on' if on else 'off'}"


def ask(model, functions, request: str, max_new_tokens: int, mode: str, **sampling) -> dict:
    """Send one request to a fresh chat in ``mode``; return what the reply did."""
    history = ChatHistory(model, system_prompt=SYSTEM_PROMPT, tools=functions)
    history.append('user', request)
    inputs, _ = history.embed_chat()
    model.grammars.enabled = mode != 'free'
    choice = 'auto' if mode == 'free' else mode
    start = time.perf_counter()
    reply = model.generate(inputs, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                           functions=functions, template=history.template, tool_choice=choice,
                           max_new_tokens=max_new_tokens, **sampling)
    text = reply.wait()
    constraint = model.grammars.last
    tokens = max(model.stats['output_tokens'], 1)
    return {'reply': text, 'seconds': round(time.perf_counter() - start, 2),
            'output_tokens': model.stats['output_tokens'],
            'decode_rate': round(model.stats['decode_rate'], 2),
            'decode_time': model.stats['decode_time'],
            'grammar_ms_per_token': round(1000 * constraint.seconds / tokens, 4)
            if constraint is not None else 0.0,
            'grammar_time': constraint.seconds if constraint is not None else 0.0,
            'calls': [{'name': c.name, 'args': c.args, 'raw': c.call.raw, 'result': c.result,
                       'success': c.success} for c in reply.calls]}


def run(model, functions, n: int, max_new_tokens: int) -> dict:
    """Ask the first ``n`` requests in each mode, greedily and sampled; return the counts."""
    samplings = {'greedy': {'do_sample': False},
                 'sampled': {'do_sample': True, 'temperature': 0.7, 'top_p': 0.95}}
    requests = [REQUESTS[i % len(REQUESTS)] for i in range(n)]
    rows = {f'{mode}_{name}': [] for mode in MODES for name in samplings}
    # the modes take turns on each request, so a change in the machine's load hits all alike
    for name, sampling in samplings.items():
        for i, (request, wanted, args) in enumerate(requests):
            for mode in MODES:
                seed = {'seed': i} if sampling['do_sample'] else {}
                row = ask(model, functions, request, max_new_tokens, mode, **sampling, **seed)
                row.update(request=request, wanted=wanted, wanted_args=args)
                rows[f'{mode}_{name}'].append(score(row))
                print(f"[{mode} {name} {i + 1}/{n}] {request!r} -> {row['reply']!r} "
                      f"calls={[c['raw'] for c in row['calls']]}", flush=True)
    out = {key: totals(scored) for key, scored in rows.items()}
    model.grammars.enabled = True
    return out


def score(row: dict) -> dict:
    """Mark one reply: a call made, one without error, the right one, with the right args."""
    good = [c for c in row['calls'] if c['success']]
    right = [c for c in good if c['name'] == row['wanted']]
    row.update(called=bool(row['calls']), called_ok=bool(good), called_wanted=bool(right),
               right_args=any(c['args'] == row['wanted_args'] for c in right))
    return row


def totals(rows: list) -> dict:
    """Return the counts and rates over the scored rows (and the rows)."""
    decode_time = sum(r['decode_time'] for r in rows)
    return {'requests': len(rows), **{key: sum(r[key] for r in rows) for key in (
        'called', 'called_ok', 'called_wanted', 'right_args')},
        'decode_rate': round(statistics.mean(r['decode_rate'] for r in rows), 2),
        'grammar_ms_per_token': round(statistics.mean(
            r['grammar_ms_per_token'] for r in rows), 4),
        'grammar_share_of_decode': round(sum(r['grammar_time'] for r in rows)
                                         / max(decode_time, 1e-9), 4),
        'rows': rows}


def summary_line(counts: dict) -> str:
    """Return e.g. '10/10 replies made a call, 10/10 without error, 6/10 the right one, ...'."""
    n = counts['requests']
    return (f"{counts['called']}/{n} replies made a call, {counts['called_ok']}/{n} without "
            f"error, {counts['called_wanted']}/{n} the right function, {counts['right_args']}/"
            f"{n} with the right arguments; {counts['decode_rate']} tokens/s, grammar "
            f"{counts['grammar_ms_per_token']} ms/token "
            f"({100 * counts['grammar_share_of_decode']:.1f}% of decode time)")


def table(results: dict) -> str:
    """Return the results as a Markdown table."""
    lines = ['| mode | sampling | call made | runs without error | right function | '
             'right arguments | decode tokens/s | grammar ms/token | grammar share |',
             '|---|---|---|---|---|---|---|---|---|']
    for key, c in results.items():
        mode, sampling = key.split('_')
        n = c['requests']
        lines.append(f"| {mode} | {sampling} | {c['called']}/{n} | {c['called_ok']}/{n} | "
                     f"{c['called_wanted']}/{n} | {c['right_args']}/{n} | {c['decode_rate']} | "
                     f"{c['grammar_ms_per_token']} | "
                     f"{100 * c['grammar_share_of_decode']:.1f}% |")
    return '\n'.join(lines)


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='default')
    parser.add_argument('--api', default=None, help="backend (default 'hf')")
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of the llama_cpp backend (default: all)')
    parser.add_argument('--n', type=int, default=10, help='requests per mode')
    parser.add_argument('--max-new-tokens', type=int, default=48)
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results',
                                                      'function_calls.json'))
    args = parser.parse_args()
    options = {'n_threads': args.threads} if args.threads else {}
    model = NanoLLM.from_pretrained(args.model, api=args.api, **options)
    try:
        functions = [BotFunctions.find(name) for name in ('set_headlights', 'TIME', 'DATE')]
        docs = BotFunctions.generate_docs(functions=functions)
        model.grammars.tokenizer  # built once (about a second), outside the timed replies
        results = run(model, functions, args.n, args.max_new_tokens)
    finally:
        model.close()
    summary = {key: summary_line(counts) for key, counts in results.items()}
    rates = {mode: statistics.mean(results[f'{mode}_{s}']['decode_rate']
                                   for s in ('greedy', 'sampled')) for mode in MODES}
    free = rates['free']
    report = {'model': model.name, 'api': model.api, 'threads': args.threads,
              'max_new_tokens': args.max_new_tokens,
              'system_prompt': SYSTEM_PROMPT, 'function_docs': docs,
              'machine': f'{platform.machine()}, {os.cpu_count()} CPUs',
              'summary': summary,
              'decode_rate_vs_free': {m: round(r / max(free, 1e-9), 3) for m, r in rates.items()},
              'table': table(results), 'headlight_calls': HEADLIGHT_CALLS, **results}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    for key, line in summary.items():
        print(f'{model.name} {key}: {line}')
    print(report['table'])
    print(f"decode rate relative to free decoding: {report['decode_rate_vs_free']}")
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()

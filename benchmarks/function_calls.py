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
How often a model calls the right bot function when a plain request asks for one.

``--mode basic`` (the default): each of N plain requests ("Please turn on the headlights.",
"What time is it?", ...) goes to a fresh chat whose system prompt holds the docs of ``TIME``,
``DATE`` and a ``set_headlights(on: bool)`` Python function that records its calls. Each mode
answers them greedily, then sampled (seeded, so a run repeats):

* ``free``: calls found in free text, no grammar (the library before constrained decoding;
  ``model.grammars.enabled = False``);
* ``auto``: ``tool_choice='auto'``: free text, a call the model starts is completed validly;
* ``required``: ``tool_choice='required'``: the reply starts with a call of a listed function,
  whose name is chosen by the likelihood of each listed name (``functions/choice.py``);
* ``tokenwise``: ``'required'`` with the name decoded token by token instead
  (``model.grammars.choose_by_likelihood = False``, the library before that choice).

Counted per reply: a call made (the library found one and ran it), a call that ran without
error (it names a listed function and its arguments bind), the right function, and the
right function with the right arguments. The decode rate of each mode and the time the
grammar took per token are measured in the same run; the cost of the constraint is the
grammar's share of the decode time.

``--mode robot``: the robot commands of ``robot_commands.py`` (drive, turn, stop, lights,
odometry and battery readers, named places and poses, a gripper), a tuning set and a
held-out set, each request a single action with its expected call. They run with
``tool_choice='required'`` (likelihood choice and ``tokenwise``), the functions with their
argument limits and without them, greedy and sampled, plus unconstrained ``free`` decoding
as the decode-rate baseline. Per reply: the calls made (target exactly 1), duplicate
motions (target 0), the first call's function and arguments, calls with an argument out of
the robot's limits. The choice options (what is scored to choose the name) are also
measured alone on each set, by scoring only. No ROS needed.

Usage: ``python3 benchmarks/function_calls.py [--mode basic|robot] [--model default]
[--api hf] [--threads N] [--n 10] [--max-new-tokens 48] [--out FILE]`` (robot: ``--n`` is
per set, 0 for all; default out ``results/function_calls_robot.json``). Robot parts can run
in parallel (``--sets``, ``--samplings``, ``--part K/N``) and be joined with ``--merge FILES
--out FILE``: ``results/function_calls_robot.json`` is tuning greedy and held-out greedy (run
side by side), then the first 4 requests of each set sampled (``--n 4 --samplings sampled``),
at ``--threads 1 --max-new-tokens 48``.
"""

import argparse
import json
import math
import os
import platform
import statistics
import time

from robot_commands import LIMITS, MOTIONS, robot_functions, SETS
from ros2_nano_llm import bot_function, BotFunctions, ChatHistory, NanoLLM
from ros2_nano_llm.functions.choice import continuation_logprob
from ros2_nano_llm.functions.record import limit_problem

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
MODES = ('free', 'auto', 'required', 'tokenwise')
ROBOT_MODES = ('free', 'tokenwise', 'required')
SAMPLINGS = {'greedy': {'do_sample': False},
             'sampled': {'do_sample': True, 'temperature': 0.7, 'top_p': 0.95}}
HEADLIGHT_CALLS = []
# what else was scored to choose a required call's function: each listed name's opening as
# the reply's start, after the prompt (scoring only: compared with the wanted function);
# the library's choice ('request|docs', functions/choice.py) is measured beside them
OPTIONS = {
    'name': lambda r: r.name,
    'name(': lambda r: f'{r.name}(',
    'name(arg=': lambda r: f'{r.name}({r.required_args[0]}=' if r.required_args
    else f'{r.name}()',
}


@bot_function(arg_docs={'on': 'True to switch them on, False for off'})
def set_headlights(on: bool) -> str:
    """Turn the robot's headlights on or off."""
    HEADLIGHT_CALLS.append(on)
    return f"headlights {'on' if on else 'off'}"


def ask(model, functions, request: str, max_new_tokens: int, mode: str,
        name: str = None, **sampling) -> dict:
    """Send one request to a fresh chat in ``mode`` (``name``: that function); return it."""
    history = ChatHistory(model, system_prompt=SYSTEM_PROMPT, tools=functions)
    history.append('user', request)
    inputs, _ = history.embed_chat()
    model.grammars.enabled = mode != 'free'
    model.grammars.choose_by_likelihood = mode != 'tokenwise'
    choice = name or {'free': 'auto', 'tokenwise': 'required'}.get(mode, mode)
    start = time.perf_counter()
    reply = model.generate(inputs, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                           functions=functions, template=history.template, tool_choice=choice,
                           max_new_tokens=max_new_tokens, **sampling)
    text = reply.wait()
    constraint = model.grammars.last
    named = constraint.choice if constraint is not None else None
    tokens = max(model.stats['output_tokens'], 1)
    # the choice runs before the first token: its time is its own figure, not decoding's
    choice_time = named.seconds if named is not None else 0.0
    decode_time = max(model.stats['decode_time'] - choice_time, 1e-9)
    return {'reply': text, 'seconds': round(time.perf_counter() - start, 2),
            'output_tokens': model.stats['output_tokens'],
            'decode_rate': round(max(tokens - 1, 0) / decode_time, 2),
            'decode_time': decode_time, 'chosen_by_name': name,
            'grammar_ms_per_token': round(1000 * constraint.seconds / tokens, 4)
            if constraint is not None else 0.0,
            'grammar_time': constraint.seconds if constraint is not None else 0.0,
            'choice_ms': round(1000 * named.seconds, 1) if named is not None else 0.0,
            'name_scores': {k: round(v, 3) for k, v in named.scores.items()}
            if named is not None else {},
            'calls': [{'name': c.name, 'args': c.args, 'raw': c.call.raw, 'result': c.result,
                       'success': c.success} for c in reply.calls]}


def run(model, functions, n: int, max_new_tokens: int) -> dict:
    """Ask the first ``n`` requests in each mode, greedily and sampled; return the counts."""
    requests = [REQUESTS[i % len(REQUESTS)] for i in range(n)]
    rows = {f'{mode}_{name}': [] for mode in MODES for name in SAMPLINGS}
    # the modes take turns on each request, so a change in the machine's load hits all alike
    for name, sampling in SAMPLINGS.items():
        for i, (request, wanted, args) in enumerate(requests):
            for mode in MODES:
                seed = {'seed': i} if sampling['do_sample'] else {}
                row = ask(model, functions, request, max_new_tokens, mode, **sampling, **seed)
                row.update(request=request, wanted=wanted, wanted_args=args)
                rows[f'{mode}_{name}'].append(score(row))
                print(f"[{mode} {name} {i + 1}/{n}] {request!r} -> {row['reply']!r} "
                      f"calls={[c['raw'] for c in row['calls']]}", flush=True)
    out = {key: totals(scored) for key, scored in rows.items()}
    model.grammars.enabled = model.grammars.choose_by_likelihood = True
    return out


def score(row: dict) -> dict:
    """Mark one reply: a call made, one without error, the right one, with the right args."""
    good = [c for c in row['calls'] if c['success']]
    right = [c for c in good if c['name'] == row['wanted']]
    row.update(called=bool(row['calls']), called_ok=bool(good), called_wanted=bool(right),
               right_args=any(c['args'] == row['wanted_args'] for c in right))
    return row


def rates(rows: list) -> dict:
    """Return the decode rate and the grammar's cost over ``rows``."""
    decode_time = sum(r['decode_time'] for r in rows)
    return {'decode_rate': round(statistics.mean(r['decode_rate'] for r in rows), 2),
            'grammar_ms_per_token': round(statistics.mean(
                r['grammar_ms_per_token'] for r in rows), 4),
            'grammar_share_of_decode': round(sum(r['grammar_time'] for r in rows)
                                             / max(decode_time, 1e-9), 4),
            'choice_ms': round(statistics.mean([r['choice_ms'] for r in rows
                                                if r['choice_ms']] or [0.0]), 1)}


def totals(rows: list) -> dict:
    """Return the counts and rates over the scored rows (and the rows)."""
    return {'requests': len(rows), **{key: sum(r[key] for r in rows) for key in (
        'called', 'called_ok', 'called_wanted', 'right_args')}, **rates(rows), 'rows': rows}


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


# ---- robot mode -----------------------------------------------------------------------------
def robot_run(model, sets: dict, samplings: dict, max_new_tokens: int) -> tuple:
    """Ask each set's requests in each robot mode, with and without limits; return counts."""
    runs, chosen = {}, {}
    limited, unlimited = robot_functions(limits=True), robot_functions(limits=False)
    for set_name, requests in sets.items():
        for sampling_name, sampling in samplings.items():
            for i, (request, wanted, args) in enumerate(requests):
                seed = {'seed': i} if sampling['do_sample'] else {}
                # the modes take turns on each request, so the machine's load hits all alike
                for mode in ROBOT_MODES:
                    for limits, functions in (('limits', limited), ('no limits', unlimited)):
                        if mode == 'free' and limits != 'limits':
                            continue  # no grammar: the limits change nothing in decoding
                        # the choice depends on the prompt alone (the docs are the same
                        # with limits): made once per request, then its function is given
                        # by name, the very grammar the choice narrows the reply to
                        name = chosen.get((set_name, i)) if mode == 'required' else None
                        row = ask(model, functions, request, max_new_tokens, mode, name,
                                  **sampling, **seed)
                        if mode == 'required' and name is None:
                            chosen[set_name, i] = row['chosen'] = \
                                model.grammars.last.choice.chosen
                        row.update(request=request, wanted=wanted, wanted_args=args)
                        key = f'{set_name}|{mode}|{limits}|{sampling_name}'
                        runs.setdefault(key, []).append(robot_score(row))
                        print(f'[{key} {i + 1}/{len(requests)}] {request!r} -> '
                              f"{[c['raw'] for c in row['calls']]} {row['reply'][:80]!r}",
                              flush=True)
    model.grammars.enabled = model.grammars.choose_by_likelihood = True
    return {key: robot_totals(rows) for key, rows in runs.items()}, chosen


def args_match(got: dict, wanted) -> bool:
    """Return True when ``got`` equals ``wanted`` (a dict or a list of them), floats to 1e-6."""
    def same(a, b):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)):
            return a == b
        return isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-6)
    options = wanted if isinstance(wanted, list) else [wanted]
    return any(set(got) == set(w) and all(same(got[k], w[k]) for k in w) for w in options)


def robot_score(row: dict) -> dict:
    """Mark one robot reply: calls made, duplicate motions, the first call, limits broken."""
    calls = row['calls']
    first = calls[0] if calls else None
    motions = [c for c in calls if c['name'] in MOTIONS]
    right = first is not None and first['success'] and first['name'] == row['wanted']
    row.update(
        calls_made=len(calls), exactly_one=len(calls) == 1,
        duplicate_motions=max(0, len(motions) - 1),
        right_function=right, right_args=right and args_match(first['args'], row['wanted_args']),
        out_of_range=sum(any(limit_problem(LIMITS.get(c['name'], {}).get(k, {}), v)
                             for k, v in c['args'].items()) for c in calls))
    return row


def robot_totals(rows: list) -> dict:
    """Return the robot counts and rates over the scored rows (and the rows)."""
    return {'requests': len(rows), **{key: sum(r[key] for r in rows) for key in (
        'right_function', 'right_args', 'exactly_one', 'duplicate_motions', 'out_of_range')},
        'calls_per_reply': round(statistics.mean(r['calls_made'] for r in rows), 2),
        **rates(rows), 'rows': rows}


def robot_table(results: dict, free_rate: dict) -> str:
    """Return the robot results as a Markdown table (decode rate relative to free decoding)."""
    lines = ['| set | name chosen by | limits | sampling | right function | right arguments | '
             'exactly 1 call | calls/reply | duplicate motions | out of limits | decode tok/s '
             '| vs free | choice ms |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for key, c in results.items():
        set_name, mode, limits, sampling = key.split('|')
        if mode == 'free':
            mode, limits = 'free (no grammar)', '-'
        n = c['requests']
        ratio = c['decode_rate'] / max(free_rate[f'{set_name}|{sampling}'], 1e-9)
        lines.append(f"| {set_name} | {'likelihood' if mode == 'required' else mode} | "
                     f"{limits} | {sampling} | {c['right_function']}/{n} | "
                     f"{c['right_args']}/{n} | {c['exactly_one']}/{n} | "
                     f"{c['calls_per_reply']} | {c['duplicate_motions']} | "
                     f"{c['out_of_range']} | {c['decode_rate']} | {ratio:.2f} | "
                     f"{c['choice_ms'] or '-'} |")  # '-': no choice (or made in another row)
    return '\n'.join(lines)


def option_choices(model, functions: list, request: str) -> dict:
    """Return the function each option in OPTIONS chooses for ``request`` (scoring only)."""
    history = ChatHistory(model, system_prompt=SYSTEM_PROMPT, tools=functions)
    history.append('user', request)
    inputs = history.embed_chat()[0].to_inputs()
    cache, backend = history.kv_cache, model.backend

    def score_all() -> dict:  # on the model's worker thread, as every use of the backend
        first = backend.prefill(inputs, cache.state, len(cache))
        cache.keys.extend(inputs.keys)
        start = len(cache)

        def run(tokens):
            return backend.continuation_logits(tokens, cache.state, start)
        out = {}
        for option, text in OPTIONS.items():
            scores = {r.name: continuation_logprob(first, backend.tokenize(text(r)), run)
                      for r in functions}
            out[option] = max(scores, key=scores.get)
        return out
    return model.submit(score_all).result()


def robot_options(model, sets: dict, library: dict) -> dict:
    """Return, per set, how often each option (and the library's choice) is right."""
    functions = robot_functions(limits=True)
    out = {}
    for set_name, requests in sets.items():
        hits = {option: 0 for option in list(OPTIONS) + ['request|docs']}
        picks = []
        for i, (request, wanted, _) in enumerate(requests):
            chosen = option_choices(model, functions, request)
            chosen['request|docs'] = library[set_name, i]
            for option, name in chosen.items():
                hits[option] += name == wanted
            picks.append({'request': request, 'wanted': wanted, 'chosen': chosen})
        out[set_name] = {'requests': len(requests), 'right_function': hits, 'picks': picks}
    return out


def robot_main(model, args) -> dict:
    """Run robot mode; return the report."""
    part, parts = (int(x) for x in args.part.split('/'))
    sets = {name: (rows[:args.n] if args.n else rows)[part - 1::parts]
            for name, rows in SETS.items() if name in args.sets.split(',')}
    samplings = {name: SAMPLINGS[name] for name in args.samplings.split(',')}
    results, chosen = robot_run(model, sets, samplings, args.max_new_tokens)
    options = robot_options(model, sets, chosen) if 'greedy' in samplings else {}
    return robot_report(results, options)


def robot_report(results: dict, options: dict) -> dict:
    """Return the robot report of ``results`` (runs of one process or merged ones)."""
    free_rate = {key.replace('|free|limits', ''): c['decode_rate']
                 for key, c in results.items() if '|free|' in key}
    for set_name, opt in options.items():
        print(f"options on {set_name}: {opt['right_function']} of {opt['requests']}")
    return {'functions_docs': BotFunctions.generate_docs(functions=robot_functions()),
            'limits': LIMITS, 'options': options,
            'table': robot_table(results, free_rate), **results}


def merge(paths: list, out: str) -> None:
    """Merge robot-mode JSON files (runs of parts of the sets in parallel) into ``out``."""
    reports = [json.load(open(path)) for path in paths]
    rows, picks = {}, {}
    for r in reports:
        for key, value in r.items():
            if key.count('|') == 3:
                rows.setdefault(key, []).extend(value['rows'])
        for set_name, value in r['options'].items():
            picks.setdefault(set_name, []).extend(value['picks'])
    results = {key: robot_totals(scored) for key, scored in rows.items()}
    options = {set_name: {'requests': len(p), 'right_function': {
        option: sum(x['chosen'][option] == x['wanted'] for x in p) for option in p[0]['chosen']},
        'picks': p} for set_name, p in picks.items()}
    order = [f'{s}|{m}|{lim}|{smp}' for s in SETS for smp in SAMPLINGS for m in ROBOT_MODES
             for lim in ('limits', 'no limits')]
    results = {k: results[k] for k in order if k in results}
    head = {k: v for k, v in reports[0].items() if k.count('|') != 3}
    report = {**head, 'merged_from': [os.path.basename(p) for p in paths],
              **robot_report(results, options)}
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    print(report['table'])
    print(f'wrote {out}')


def basic_main(model, args) -> dict:
    """Run basic mode; return the report."""
    functions = [BotFunctions.find(name) for name in ('set_headlights', 'TIME', 'DATE')]
    docs = BotFunctions.generate_docs(functions=functions)
    results = run(model, functions, args.n, args.max_new_tokens)
    summary = {key: summary_line(counts) for key, counts in results.items()}
    mode_rates = {mode: statistics.mean(results[f'{mode}_{s}']['decode_rate']
                                        for s in SAMPLINGS) for mode in MODES}
    free = mode_rates['free']
    for key, line in summary.items():
        print(f'{model.name} {key}: {line}')
    return {'function_docs': docs, 'summary': summary,
            'decode_rate_vs_free': {m: round(r / max(free, 1e-9), 3)
                                    for m, r in mode_rates.items()},
            'table': table(results), 'headlight_calls': HEADLIGHT_CALLS, **results}


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mode', choices=('basic', 'robot'), default='basic')
    parser.add_argument('--model', default='default')
    parser.add_argument('--api', default=None, help="backend (default 'hf')")
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of the llama_cpp backend (default: all)')
    parser.add_argument('--n', type=int, default=None,
                        help='requests per mode (basic: default 10; robot: per set, all)')
    parser.add_argument('--max-new-tokens', type=int, default=48)
    parser.add_argument('--out', default=None)
    parser.add_argument('--sets', default='tuning,held_out', help='robot: the sets to run')
    parser.add_argument('--samplings', default='greedy,sampled', help='robot: greedy, sampled')
    parser.add_argument('--part', default='1/1',
                        help='robot: K/N runs every N-th request from the K-th (parallel parts)')
    parser.add_argument('--merge', nargs='+', default=None,
                        help='robot: merge these JSON files (parts run in parallel) into --out')
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    if args.n is None:
        args.n = 10 if args.mode == 'basic' else 0
    name = 'function_calls.json' if args.mode == 'basic' else 'function_calls_robot.json'
    out = args.out or os.path.join(os.path.dirname(__file__), 'results', name)
    options = {'n_threads': args.threads} if args.threads else {}
    model = NanoLLM.from_pretrained(args.model, api=args.api, **options)
    try:
        model.grammars.tokenizer  # built once (about a second), outside the timed replies
        report = (robot_main if args.mode == 'robot' else basic_main)(model, args)
    finally:
        model.close()
    report = {'model': model.name, 'api': model.api, 'threads': args.threads,
              'mode': args.mode, 'max_new_tokens': args.max_new_tokens,
              'system_prompt': SYSTEM_PROMPT,
              'machine': f'{platform.machine()}, {os.cpu_count()} CPUs', **report}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    print(report['table'])
    if 'decode_rate_vs_free' in report:
        print(f"decode rate relative to free decoding: {report['decode_rate_vs_free']}")
    print(f'wrote {out}')


if __name__ == '__main__':
    main()

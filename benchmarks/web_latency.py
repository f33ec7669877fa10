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
What the web page adds to a reply: first-token latency and token rate in a real browser.

The installed ``nano_llm_node`` (embedded SmolLM2 on llama.cpp) and ``nano_llm_web`` run as
child processes; headless Chromium (Playwright, ``/usr/bin/chromium``) opens the page and
sends each prompt from it. The baseline, in the same run, is a plain rclpy subscription to
``~/output/stream`` in this process (what ``ros2 topic echo`` does). For every turn:

* first token: the browser's first rendered piece (``performance.timeOrigin + now()`` when
  the page has put it into the DOM) minus the first piece's arrival at the rclpy
  subscription (both on this machine's clock). Target: <= 20 ms median.
* token rate: pieces rendered per second by the page ((n - 1) / (last - first)) vs pieces
  received per second by the subscription, and the share of the pieces the page rendered.
  Target: >= 95 %.

A flood stage then publishes synthetic pieces on a second target's ``~/output/stream`` at
fixed rates (beyond what the model decodes here) to find the rate the page keeps up with.

Usage: ``python3 benchmarks/web_latency.py [--turns 6] [--out
benchmarks/results/web_latency.json]`` (after ``source scripts/env.sh``).
"""

import argparse
import json
import pathlib
import platform
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'test' / 'integration'))

from node_harness import REPO_ROOT, start_node  # noqa: E402 - the harness path
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402, I100
from ros2_nano_llm.msg import StreamToken  # noqa: E402
from web_pages import Browser, close_all, WebNode  # noqa: E402

TARGET_ADDED_MS = 20.0
TARGET_RATE_RATIO = 0.95
TOKEN = 'bench-token'
PROMPTS = ('Tell me about robots.', 'What is a wheel?', 'Describe the sea.',
           'Name some tools.', 'What do cameras do?', 'Explain rain briefly.')
FLOOD_RATES = (100.0, 300.0, 1000.0)
FLOOD_SECONDS = 2.0


def run_turns(view, client, turns):
    """Send each prompt from the page; return one row per turn."""
    offset = time.time() - time.monotonic()   # the harness keeps monotonic arrival times
    rows = []
    for i in range(turns):
        mark = client.mark()
        view.page.evaluate('() => { window.nanoLLM.lastResult = null; }')
        view.prompt(PROMPTS[i % len(PROMPTS)])
        turn, = client.wait_turn_end(mark['turn'], 300.0)
        view.wait('window.nanoLLM.lastResult', timeout=300.0, what='the reply to end')
        seen = view.turns_rendered()
        key = str(turn.turn_id)
        pieces = len([p for p in turn.pieces if p.text])
        first_ros = (turn.first_piece_at + offset) * 1000.0
        last_ros = (turn.last_piece_at + offset) * 1000.0
        first_page, last_page = seen['firstRendered'][key], seen['lastRendered'][key]
        rendered = seen['pieces'][key]
        rows.append({
            'turn_id': turn.turn_id, 'pieces': pieces, 'pieces_rendered': rendered,
            'added_first_token_ms': first_page - first_ros,
            'ros_rate': (pieces - 1) / max(1e-6, (last_ros - first_ros) / 1000.0),
            'page_rate': (rendered - 1) / max(1e-6, (last_page - first_page) / 1000.0),
        })
        print(f"turn {turn.turn_id}: +{rows[-1]['added_first_token_ms']:.1f} ms first token, "
              f"{rendered}/{pieces} pieces, page {rows[-1]['page_rate']:.1f}/s vs rclpy "
              f"{rows[-1]['ros_rate']:.1f}/s")
    return rows


def flood(browser, tmp, client, rates):
    """Publish synthetic pieces on /web_bench_flood at each rate; return one row per rate."""
    web = WebNode(tmp / 'web_flood.log', '/web_bench_flood', token=TOKEN, name='web_flood')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                     reliability=ReliabilityPolicy.RELIABLE)
    pub = client.node.create_publisher(StreamToken, '/web_bench_flood/output/stream', qos)
    rows = []
    try:
        view = browser.page(web.url, active=False)
        time.sleep(1.0)  # the web node's subscription matched
        for turn_id, rate in enumerate(rates, start=1):
            count = int(rate * FLOOD_SECONDS)
            start = time.monotonic()
            for index in range(count):
                pub.publish(StreamToken(turn_id=turn_id, token_index=index, text='tok '))
                delay = start + (index + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent_s = time.monotonic() - start
            time.sleep(1.0)
            seen = view.turns_rendered()
            key = str(turn_id)
            rendered = seen['pieces'].get(key, 0)
            span = (seen['lastRendered'].get(key, 0) - seen['firstRendered'].get(key, 0))
            rows.append({'rate': rate, 'sent': count, 'sent_rate': (count - 1) / sent_s,
                         'rendered': rendered,
                         'page_rate': (rendered - 1) / max(1e-6, span / 1000.0),
                         'share': rendered / count})
            print(f'flood {rate:g}/s: page rendered {rendered}/{count} at '
                  f"{rows[-1]['page_rate']:.0f}/s (sent at {rows[-1]['sent_rate']:.0f}/s)")
        view.page.close()
    finally:
        web.stop()
    return rows


def main():
    """Run the benchmark; print a summary and save JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--turns', type=int, default=6)
    parser.add_argument('--max-new-tokens', type=int, default=64)
    parser.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' /
                                             'web_latency.json'))
    args = parser.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='web_latency-'))
    process, client = start_node(
        tmp, {'api': 'llama_cpp', 'n_threads': 2, 'n_ctx': 2048,
              'max_new_tokens': args.max_new_tokens},
        params_file=REPO_ROOT / 'config' / 'nano_llm.yaml', first_state='active')
    web = browser = None
    try:
        web = WebNode(tmp / 'web.log', '/nano_llm', token=TOKEN)
        browser = Browser()
        view = browser.page(web.url, TOKEN)
        view.prompt('Hello.')  # warm-up turn: the first load of everything
        view.wait('window.nanoLLM.lastResult', timeout=300.0, what='the warm-up reply')
        rows = run_turns(view, client, args.turns)
        flood_rows = flood(browser, tmp, client, FLOOD_RATES)
    finally:
        close_all(browser, web, process, client)
    added = [r['added_first_token_ms'] for r in rows]
    rate_ratio = statistics.median(r['page_rate'] / r['ros_rate'] for r in rows)
    share = sum(r['pieces_rendered'] for r in rows) / sum(r['pieces'] for r in rows)
    kept_up = [r['rate'] for r in flood_rows if r['share'] >= TARGET_RATE_RATIO]
    summary = {
        'added_first_token_ms_median': statistics.median(added),
        'added_first_token_ms_max': max(added),
        'page_rate_vs_rclpy_median': rate_ratio,
        'pieces_rendered_share': share,
        'flood_rate_kept_up_per_s': max(kept_up, default=0.0),
        'targets': {'added_first_token_ms_median': TARGET_ADDED_MS,
                    'page_rate_vs_rclpy': TARGET_RATE_RATIO},
        'meets_targets': statistics.median(added) <= TARGET_ADDED_MS
        and rate_ratio >= TARGET_RATE_RATIO and share >= TARGET_RATE_RATIO,
    }
    result = {'benchmark': 'web_latency', 'machine': platform.machine(),
              'python': platform.python_version(), 'model': 'default (SmolLM2-135M, llama_cpp)',
              'summary': summary, 'turns': rows, 'flood': flood_rows}
    print(json.dumps(summary, indent=2))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'saved {out}')


if __name__ == '__main__':
    main()

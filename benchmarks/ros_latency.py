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
What ROS adds to a reply: first-token latency and token rate seen by another process.

The installed ``nano_llm_node`` runs as a child process (``--ros-args --params-file``, the
lifecycle driven through ``~/change_state``); this process publishes each prompt and
subscribes to ``~/output/stream`` over real DDS. For every turn, in the same run:

* first token: time from publishing the prompt to the first piece arriving here, vs the
  backend's own time to first token for that turn (``/diagnostics``: ``last_ttft_ms``,
  from the generation job's start to its first sampled token). The difference is what
  ROS and the node add: prompt delivery, the callback, building the chat input, publishing
  and delivering the piece. Target: <= 10 ms.
* token rate: (tokens - 1) / (last piece - first piece) seen here, vs the backend's decode
  rate (``tokens_per_second``). Target: >= 95 %.

Usage: ``python3 benchmarks/ros_latency.py [--model default|DIR] [--api auto|hf|llama_cpp]
[--turns 8] [--out benchmarks/results/ros_latency.json]`` (after ``source scripts/env.sh``;
on the Jazzy leg ``NANO_LLM_DISTRO=jazzy source scripts/env.sh`` and ``--api llama_cpp``).
"""

import argparse
import ctypes
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros2_nano_llm.msg import StreamToken
from std_msgs.msg import String

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET_ADDED_MS = 10.0
TARGET_RATE_RATIO = 0.95
PROMPTS = ['Tell me a story about a robot that learns to paint.',
           'Describe the ocean to someone who has never seen it.',
           'Explain how a bicycle works, step by step.',
           'Write a short poem about the moon and the tides.',
           'What would a day on Mars be like for an explorer?',
           'Describe a busy train station in the morning.',
           'Explain why the sky looks blue during the day.',
           'Tell me about a lighthouse keeper and a storm.']


def _die_with_parent():
    try:
        ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_node(model, tokens, log_path, api='auto'):
    """Start nano_llm_node as `ros2 launch` would; return the Popen."""
    exe = shutil.which('nano_llm_node') or str(
        ROOT / 'install' / 'ros2_nano_llm' / 'lib' / 'ros2_nano_llm' / 'nano_llm_node')
    argv = [exe, '--ros-args', '-r', '__node:=nano_llm_bench',
            '--params-file', str(ROOT / 'config' / 'nano_llm_tiny.yaml'),
            '-p', f'model:={model}', '-p', f'api:={api}', '-p', f'max_new_tokens:={tokens}',
            '-p', f'min_new_tokens:={tokens}', '-p', 'diagnostics_period:=0.0']
    log = open(log_path, 'wb')
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'),
                            preexec_fn=_die_with_parent)


def stop_node(process):
    """End the node: SIGINT, then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            pass


class Probe:
    """The benchmark's side of the DDS link: prompts out, stream pieces and diagnostics in."""

    def __init__(self, target):
        self.node = rclpy.create_node('nano_llm_latency_probe')
        self.target = target
        self.cond = threading.Condition()
        self.pieces = {}       # turn_id -> [arrival times]
        self.delivery = {}     # turn_id -> seconds from the node's publish to arrival here
        self.ended = set()
        self.stats = {}        # turn_id -> diagnostics values
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.prompt = self.node.create_publisher(String, f'{target}/input/text', reliable)
        self.node.create_subscription(StreamToken, f'{target}/output/stream', self._on_piece,
                                      reliable)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 100)
        self.change = self.node.create_client(ChangeState, f'{target}/change_state')
        self.get = self.node.create_client(GetState, f'{target}/get_state')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_piece(self, msg):
        now, wall = time.perf_counter(), time.time()
        with self.cond:
            if msg.eos:
                self.ended.add(msg.turn_id)
            else:
                if msg.turn_id not in self.pieces:
                    # same machine, same clock: the stamp says when the node published it
                    stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
                    self.delivery[msg.turn_id] = wall - stamp
                self.pieces.setdefault(msg.turn_id, []).append(now)
            self.cond.notify_all()

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name.endswith(self.target):
                values = {kv.key: kv.value for kv in status.values}
                with self.cond:
                    self.stats[int(values['stats_turn_id'])] = values
                    self.cond.notify_all()

    def transition(self, transition_id, timeout=600.0):
        """Request a lifecycle transition; return its success."""
        if not self.change.wait_for_service(timeout_sec=120.0):
            raise RuntimeError('the node did not come up (no ~/change_state)')
        done = threading.Event()
        future = self.change.call_async(ChangeState.Request(
            transition=Transition(id=transition_id)))
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise RuntimeError('transition timed out')
        return future.result().success

    def connect(self, timeout=30.0):
        """Wait until the prompt publisher and the stream subscription are matched."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.prompt.get_subscription_count() and \
                    self.node.count_publishers(f'{self.target}/output/stream'):
                time.sleep(0.5)
                return
            time.sleep(0.05)
        raise RuntimeError('topics did not connect')

    def turn(self, text, turn_id, timeout=600.0):
        """Publish a prompt and wait for its turn: send time, arrivals, stats, delivery."""
        sent = time.perf_counter()
        self.prompt.publish(String(data=text))
        with self.cond:
            if not self.cond.wait_for(lambda: turn_id in self.ended and turn_id in self.stats,
                                      timeout):
                raise RuntimeError(f'turn {turn_id} did not finish')
            return (sent, list(self.pieces.get(turn_id, [])), self.stats[turn_id],
                    self.delivery.get(turn_id, float('nan')))

    def close(self):
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()


def measure(probe, turns):
    """Run ``turns`` measured turns after one warm-up; return one row per turn."""
    rows = []
    for i in range(turns + 1):
        sent, arrivals, stats, delivery = probe.turn(PROMPTS[i % len(PROMPTS)], i + 1)
        if i == 0 or not arrivals:
            continue  # the warm-up turn pays one-time costs (first forward pass, allocations)
        tokens = int(stats['output_tokens'])
        seen_ms = 1000.0 * (arrivals[0] - sent)
        backend_ms = float(stats['last_ttft_ms'])
        span = arrivals[-1] - arrivals[0]
        sub_rate = (tokens - 1) / span if span > 0 else float('nan')
        backend_rate = float(stats['tokens_per_second'])
        setup_ms = float(stats['last_prompt_setup_ms'])
        rows.append({
            'turn': i, 'output_tokens': tokens, 'pieces': len(arrivals),
            'prompt_tokens': int(stats['input_tokens']),
            'first_token_subscriber_ms': seen_ms, 'ttft_backend_ms': backend_ms,
            'added_ms': seen_ms - backend_ms, 'first_token_ratio': seen_ms / backend_ms,
            # where the added time goes: the node's prompt handling (callback -> generation
            # started, chat input built), the piece's trip from the node's publish to here,
            # and the rest (prompt delivery and dispatch, backend -> publisher hand-off)
            'added_node_prompt_setup_ms': setup_ms,
            'added_piece_delivery_ms': 1000.0 * delivery,
            'added_other_ms': seen_ms - backend_ms - setup_ms - 1000.0 * delivery,
            'rate_subscriber_tok_s': sub_rate, 'rate_backend_tok_s': backend_rate,
            'rate_ratio': sub_rate / backend_rate})
    return rows


def summarize(rows, model, tokens, api='auto'):
    """Return the summary: medians and worst cases of both figures and their ratios."""
    def med(key):
        return statistics.median(r[key] for r in rows)
    summary = {
        'model': model, 'api': api, 'turns': len(rows), 'tokens_per_reply': tokens,
        'first_token_subscriber_ms_median': med('first_token_subscriber_ms'),
        'ttft_backend_ms_median': med('ttft_backend_ms'),
        'added_ms_median': med('added_ms'), 'added_ms_max': max(r['added_ms'] for r in rows),
        'first_token_ratio_median': med('first_token_ratio'),
        'added_node_prompt_setup_ms_median': med('added_node_prompt_setup_ms'),
        'added_piece_delivery_ms_median': med('added_piece_delivery_ms'),
        'added_other_ms_median': med('added_other_ms'),
        'rate_subscriber_tok_s_median': med('rate_subscriber_tok_s'),
        'rate_backend_tok_s_median': med('rate_backend_tok_s'),
        'rate_ratio_median': med('rate_ratio'),
        'rate_ratio_min': min(r['rate_ratio'] for r in rows),
        'target_added_ms': TARGET_ADDED_MS, 'target_rate_ratio': TARGET_RATE_RATIO,
    }
    summary['meets_added_ms'] = summary['added_ms_median'] <= TARGET_ADDED_MS
    summary['meets_rate_ratio'] = summary['rate_ratio_median'] >= TARGET_RATE_RATIO
    summary['machine'] = {'platform': platform.platform(), 'cpus': os.cpu_count(),
                          'python': platform.python_version(),
                          'ros_distro': os.environ.get('NANO_LLM_DISTRO', 'kilted'),
                          'rmw': os.environ.get('RMW_IMPLEMENTATION', 'default')}
    return summary


def main():
    """Run the benchmark, print the summary and write the JSON file."""
    p = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    p.add_argument('--model', default='default', help="'default' (SmolLM2) or a model dir")
    p.add_argument('--api', default='auto',
                   help="the node's backend: 'auto' (its default: llama_cpp for the GGUF), 'hf' "
                        "or 'llama_cpp'")
    p.add_argument('--turns', type=int, default=8, help='measured turns (after one warm-up)')
    p.add_argument('--tokens', type=int, default=64, help='tokens per reply (min = max)')
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'ros_latency.json'))
    args = p.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    log_path = os.path.join(tempfile.gettempdir(), f'ros_latency_node_{os.getpid()}.log')
    process = start_node(args.model, args.tokens, log_path, args.api)
    rclpy.init()
    probe = None
    try:
        probe = Probe('/nano_llm_bench')
        if not (probe.transition(Transition.TRANSITION_CONFIGURE)
                and probe.transition(Transition.TRANSITION_ACTIVATE)):
            raise RuntimeError(f'the node did not activate; see {log_path}')
        probe.connect()
        rows = measure(probe, args.turns)
    finally:
        if probe is not None:
            probe.close()
        rclpy.try_shutdown()
        stop_node(process)
    summary = summarize(rows, args.model, args.tokens, args.api)
    print(json.dumps(summary, indent=2))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump({'summary': summary, 'turns': rows}, f, indent=2)
    print(f'wrote {args.out}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())

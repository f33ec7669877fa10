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
PNG plots of a benchmark's JSON, drawn from the same run (matplotlib's Agg canvas).

matplotlib is a benchmark-only dependency (requirements.txt, the ``benchmark`` extra).
``python3 benchmarks/plots.py benchmarks/results/ttft.json`` redraws the plots of a saved
run; ``benchmarks/ttft.py`` draws them itself after writing its JSON. Figures are drawn on
their own Agg canvas, without pyplot: no display and no process-wide backend setting.
"""

import json
import os
import sys
from typing import Dict, List, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# series name -> (label, colour, marker)
SERIES = {
    'llama_cpp': ('ros2_nano_llm on llama_cpp (cached chat)', 'tab:blue', 'o'),
    'llama_generate': ("llama.cpp's own loop (Llama.generate, prefix reuse)", 'tab:orange', 's'),
    'hf': ('ros2_nano_llm on hf (cached chat)', 'tab:green', '^'),
    'recompute': ('recompute: the whole chat prefilled (llama_cpp)', 'tab:red', 'x'),
}


def ttft_plot(turns: Dict[str, List[Tuple[int, float]]], path: str, note: str = '') -> str:
    """Draw TTFT (s) against the chat's length (tokens) for each series; return ``path``."""
    fig, ax = _figure(8, 4.5)
    for name, points in turns.items():
        if not points:
            continue
        label, colour, marker = SERIES[name]
        x, y = zip(*points)
        ax.plot(x, [v * 1000 for v in y], marker=marker, color=colour, label=label)
    ax.set_xlabel('chat length before the turn (tokens)')
    ax.set_ylabel('time to first token (ms)')
    ax.set_yscale('log')
    ax.set_title('TTFT per turn, SmolLM2-135M' + (f' ({note})' if note else ''))
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def decode_plot(rates: Dict[str, Sequence[float]], path: str, note: str = '') -> str:
    """Draw the median decode rate (tokens/s) of each series as bars; return ``path``."""
    fig, ax = _figure(7, 4)
    names = [n for n in SERIES if rates.get(n)]
    values = [_median(rates[n]) for n in names]
    bars = ax.bar(range(len(names)), values, color=[SERIES[n][1] for n in names])
    ax.bar_label(bars, fmt='%.1f')
    ax.set_xticks(range(len(names)), [SERIES[n][0].split(' (')[0] for n in names], fontsize=8)
    ax.set_ylabel('decode rate (tokens/s, median over turns)')
    ax.set_title('Decode rate per backend' + (f' ({note})' if note else ''))
    ax.grid(True, axis='y', alpha=0.3)
    return _save(fig, path)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _figure(width: float, height: float):
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path)
    return path


def ttft_plots(result: dict, json_path: str) -> List[str]:
    """Draw the plots of a ``benchmarks/ttft.py`` result beside its JSON; return the paths."""
    base = os.path.splitext(json_path)[0]
    note = f"{result['threads']} threads, load {result['load_average_during_run']:.1f}"
    series = {name: [(r[name].get('history_tokens', r['history_tokens']), r[name]['ttft_s'])
                     for r in result['turns'] if name in r] for name in SERIES}
    rates = {name: [r[name]['decode_rate'] for r in result['turns']
                    if r.get(name, {}).get('decode_rate')] for name in SERIES}
    return [ttft_plot(series, base + '_ttft.png', note),
            decode_plot(rates, base + '_decode.png', note)]


if __name__ == '__main__':
    for arg in sys.argv[1:]:
        with open(arg) as f:
            print('\n'.join(ttft_plots(json.load(f), arg)))

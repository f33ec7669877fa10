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
Every setting in one table: the node's parameters and the terminal chat's flags come from it.

``PARAMS`` holds one ``ParamSpec`` row per setting (name, default, meaning, range, when a
change applies, the backend it belongs to, whether the terminal chat has a flag for it).
From it come ``Settings`` (the frozen plain values; the node's ``NodeConfig``), the node's
parameter declarations (``ros/params.py``), the terminal chat's flags (``add_arguments``)
and the defaults of ``NanoLLM.generate()`` (``SAMPLING_DEFAULTS``). No rclpy here.

Each setting has a kind that says when a change takes effect in the node:

- ``live``: applied to the next reply (sampling settings, busy policy, image age, ...);
  ``system_prompt`` also resets the chat.
- ``reload``: needs the model or the chat to be built again (model, api, template, ...);
  refused while a model is loaded (inactive or active), with the way out in the reason.
- ``startup``: read once when the node starts (read-only afterwards: a different value is
  refused; setting the current value again succeeds, as ``ros2 param load`` of the file
  the node started with does).

A ``reload`` or ``startup`` parameter set to the value it already has is always accepted.

Values that look odd but are valid (a parameter storm accepted them, issue 21 item 13):
``base_url: ''`` is its documented default (``$OPENAI_BASE_URL`` or the local server), and a
``reload`` setting set to its current value is a no-op; ``history_file: ''`` at run time is
likewise accepted only when it is already '' (any other change is refused while a model is
loaded), and while unconfigured it means "keep the chat in memory" from the next configure;
``max_new_tokens: 1`` is inside its range (a one-token answer); ``repetition_penalty: 0.5``
is inside its range ``(0, 10]`` and favours repeats (below 1.0), as transformers defines it.
"""

import argparse
from dataclasses import field, fields, make_dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .models import auto_api, BACKENDS

BUSY_POLICIES = ('queue', 'interrupt', 'drop')
LIVE, RELOAD, STARTUP = 'live', 'reload', 'startup'
# api: 'auto' lets the library choose (llama_cpp for a .gguf model where it is installed)
APIS = ('auto', *BACKENDS)


class ParamSpec:
    """
    One setting: name, default, meaning, allowed range and when a change applies.

    ``backend``/``option``: the setting is option ``option`` of that backend (``api``); the
    backend declares its options here, once. Its ``default`` means 'the backend decides':
    passed as None when ``none_default``, and left out when ``api`` is 'auto' (the library
    picks the backend). ``choices``: the allowed values of a string. ``cli``: the terminal
    chat has a flag for it (``--name-with-dashes``).
    """

    __slots__ = ('name', 'default', 'description', 'kind', 'low', 'high', 'constraints',
                 'backend', 'option', 'none_default', 'choices', 'cli')

    def __init__(self, name: str, default: Any, description: str, kind: str = LIVE,
                 low: Optional[float] = None, high: Optional[float] = None,
                 constraints: str = '', backend: str = '', option: str = '',
                 none_default: bool = True, choices: Sequence[str] = (), cli: bool = False):
        self.name, self.default, self.description, self.kind = name, default, description, kind
        self.low, self.high, self.choices, self.cli = low, high, tuple(choices), cli
        self.constraints = constraints or (
            'one of: ' + ', '.join(self.choices) if self.choices else '')
        self.backend, self.option, self.none_default = backend, option or name, none_default

    @property
    def type(self) -> type:  # noqa: A003 - the setting's Python type
        """Return the Python type of the setting's values (tuple: a string list)."""
        return type(self.default)

    @property
    def flag(self) -> str:
        """Return the terminal chat's flag for this setting (``--max-new-tokens``)."""
        return '--' + self.name.replace('_', '-')

    def problem(self, value: Any) -> str:
        """Return why ``value`` is out of this setting's range or choices, or ''."""
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}"
        if self.low is not None and not self.low <= value <= self.high:
            return f'{self.name} must be in [{self.low}, {self.high}]; got {value!r}'
        return ''


PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('model', 'default', "model directory, .gguf file, hub id, or 'default' (the "
              'embedded SmolLM2-135M-Instruct)', RELOAD, cli=True),
    ParamSpec('api', 'auto', "backend: 'auto' (llama_cpp for a .gguf model where it is "
              "installed, else hf), 'hf' (transformers), 'llama_cpp', 'openai' (a server), "
              "'mlc' (Jetson, where mlc_llm is installed)", RELOAD, choices=APIS, cli=True),
    ParamSpec('n_threads', 0, 'llama_cpp: CPU threads; 0 for every CPU', RELOAD, 0, 1024,
              backend='llama_cpp', cli=True),
    ParamSpec('n_ctx', 0, "llama_cpp: context size; 0 for max_context_len or the model's own",
              RELOAD, 0, 1 << 20, backend='llama_cpp', cli=True),
    ParamSpec('n_gpu_layers', -1, 'llama_cpp: layers offloaded to the GPU; -1 for all',
              RELOAD, -1, 65536, backend='llama_cpp', none_default=False, cli=True),
    ParamSpec('base_url', '', "openai: server URL; '' for $OPENAI_BASE_URL or "
              'http://127.0.0.1:8000', RELOAD, backend='openai', cli=True),
    ParamSpec('quantization', '', "backend quantization setting; '' for the model's own",
              RELOAD, cli=True),
    ParamSpec('max_context_len', 0, "context window in tokens; 0 for the model's own", RELOAD,
              0, 1 << 20, cli=True),
    ParamSpec('chat_template', '', "chat template name or JSON file; '' picks it from the model",
              RELOAD, cli=True),
    ParamSpec('functions_file', '', "YAML list of bot functions -> ROS services; '' for none",
              RELOAD),
    ParamSpec('builtin_functions', (), 'built-in bot functions the model may call, by name '
              "(e.g. ['DATE', 'TIME']); [] for none", RELOAD),
    ParamSpec('history_file', '', 'JSON file the chat is saved to after every change and '
              "loaded from at configure (docs/history-format.md); '' keeps it in memory only",
              RELOAD),
    ParamSpec('kv_state_max_bytes', 256 << 20, 'largest KV state file kept beside '
              'history_file (<history_file>.kv) for a warm restart: its prefill, saved when the '
              'node is idle and at deactivate, cleanup and shutdown; 0 for none', RELOAD, 0,
              1 << 40),
    ParamSpec('system_prompt', '', "system prompt; '' for the template's default. A change "
              'resets the chat; refused when it leaves too little room for the chat', LIVE,
              cli=True),
    ParamSpec('reply_prefix', '', 'text every reply starts with (a function call in it runs); '
              "'' for none. Refused when it does not fit the room kept for replies", LIVE),
    ParamSpec('tool_choice', 'auto', "function calls in replies to ~/input/text: 'auto' (the "
              "model may call), 'required' (each reply starts with a call, its one call), "
              "'none' (no calls) or a loaded function's name (that one is called, once)", LIVE),
    ParamSpec('max_calls_per_turn', 3, 'most bot function calls one reply may make; a call '
              'past it is not run and the model reads why (~/call_function calls are not '
              'counted)', LIVE, 1, 100),
    ParamSpec('require_approval', False, "every bot function call waits for an operator's "
              'decision on ~/approve_call (false: only functions marked confirm: true do)',
              LIVE),
    ParamSpec('approval_timeout', 30.0, "seconds a call waits for the operator's decision; "
              'no decision in time denies it', LIVE, 0.1, 3600.0),
    ParamSpec('max_new_tokens', 128, 'most tokens in one reply (1 is valid: a one-token '
              'answer, such as a yes/no classifier)', LIVE, 1, 8192, cli=True),
    ParamSpec('min_new_tokens', -1, 'fewest tokens in one reply before a stop token counts; '
              '-1 for no minimum', LIVE, -1, 8192, cli=True),
    ParamSpec('do_sample', False, 'sample the next token (True) or pick the most likely one',
              LIVE, cli=True),
    ParamSpec('temperature', 0.7, 'sampling temperature (> 0 when do_sample)', LIVE, 0.0, 10.0,
              cli=True),
    ParamSpec('top_p', 0.95, 'nucleus sampling mass, in (0, 1]', LIVE, 0.0, 1.0, cli=True),
    ParamSpec('repetition_penalty', 1.0, 'penalty on tokens already in the chat (> 0; 1.0 is '
              'off, above 1.0 discourages repeats, below 1.0 favours them: valid, as in '
              "transformers' RepetitionPenaltyLogitsProcessor)", LIVE, 0.0, 10.0, cli=True),
    ParamSpec('wrap_tokens', 0, 'when the chat overflows, keep about this many newest tokens; '
              '0 for half the chat. Refused when it leaves no room to wrap (above the chat '
              'limit minus the system prompt)', LIVE, 0, 1 << 20, cli=True),
    ParamSpec('busy_policy', 'queue', 'a prompt that arrives during a reply: queue it, '
              'interrupt the reply, or drop the prompt', LIVE, choices=BUSY_POLICIES),
    ParamSpec('max_queue', 4, "prompts waiting while busy (busy_policy 'queue'); more are "
              'dropped', LIVE, 1, 1000),
    ParamSpec('max_image_age', 5.0, 'seconds an image frame stays eligible to join the next '
              'prompt; 0 ignores images', LIVE, 0.0, 86400.0),
    ParamSpec('max_image_size', 4096, 'largest width or height (pixels) of a camera frame; a '
              'larger frame is dropped before it is decoded', LIVE, 16, 65536),
    ParamSpec('load_timeout', 900.0, 'seconds configure waits for the model to load', LIVE,
              1.0, 86400.0),
    ParamSpec('autostart', False, 'configure and activate on start', STARTUP),
    ParamSpec('diagnostics_period', 1.0, 'seconds between /diagnostics messages (also sent '
              'after each reply); 0 sends them only after replies', STARTUP, 0.0, 3600.0),
)
SPECS: Dict[str, ParamSpec] = {spec.name: spec for spec in PARAMS}
# the settings that are keyword arguments of NanoLLM.generate(), and their defaults there
SAMPLING = ('max_new_tokens', 'min_new_tokens', 'do_sample', 'temperature', 'top_p',
            'repetition_penalty')
SAMPLING_DEFAULTS: Dict[str, Any] = {name: SPECS[name].default for name in SAMPLING}


class _SettingsMethods:
    """What Settings can do besides holding the values (the fields come from PARAMS)."""

    __slots__ = ()

    def sampling(self) -> Dict[str, Any]:
        """Return the keyword arguments of ``NanoLLM.generate()`` that set the sampling."""
        return {name: getattr(self, name) for name in SAMPLING}

    def library_api(self) -> str:
        """Return the backend to load: ``api``, or with ``auto`` the fastest installed one."""
        return auto_api(self.model) if self.api == 'auto' else self.api

    def backend_options(self) -> Dict[str, Any]:
        """
        Return the options of the backend to load that the settings set.

        Every option of that backend is passed (None where the setting says 'the backend
        decides'), for ``NanoLLM.from_pretrained``.
        """
        api = self.library_api()
        return {spec.option: None if value == spec.default and spec.none_default else value
                for spec, value in ((spec, getattr(self, spec.name)) for spec in PARAMS)
                if spec.backend == api}

    def load_options(self) -> Dict[str, Any]:
        """Return the keyword arguments of ``NanoLLM.from_pretrained`` ('' and 0: None)."""
        return {'model': self.model, 'api': self.library_api(),
                'quantization': self.quantization or None,
                'max_context_len': self.max_context_len or None, **self.backend_options()}

    def updated(self, values: Dict[str, Any]) -> 'Settings':
        """Return a copy with ``values`` (name -> value) changed, checked as a whole."""
        data = {spec.name: getattr(self, spec.name) for spec in PARAMS}
        data.update({name: plain(value, SPECS.get(name)) for name, value in values.items()})
        config = type(self)(**data)
        problem = config.problem()
        if problem:
            raise ValueError(problem)
        return config

    def problem(self) -> str:
        """Return what is wrong with this combination of values, or '' when it is fine."""
        for spec in PARAMS:
            if spec.choices and getattr(self, spec.name) not in spec.choices:
                return spec.problem(getattr(self, spec.name))
        if self.do_sample and self.temperature <= 0.0:
            return 'temperature must be > 0 when do_sample is true'
        if self.top_p <= 0.0:
            return 'top_p must be > 0 (1.0 keeps every token)'
        if self.repetition_penalty <= 0.0:
            return 'repetition_penalty must be > 0 (1.0 turns it off)'
        if not self.model.strip():
            return "model must not be empty (use 'default' for the embedded SmolLM2)"
        if not self.tool_choice.strip():
            return ("tool_choice must be 'auto', 'required', 'none' or a function's name; "
                    "got ''")
        names = self.builtin_functions
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            return ('builtin_functions must be a list of function names such as '
                    f"['DATE', 'TIME'] ([] for none); got {names!r}")
        return ''


# Settings: every setting as a plain value, one frozen snapshot. Its fields are generated
# from PARAMS (the one place a setting is declared).
Settings = make_dataclass(
    'Settings',
    [(spec.name, spec.type, field(default=spec.default)) for spec in PARAMS],
    bases=(_SettingsMethods,), frozen=True)
Settings.__module__ = __name__
Settings.__doc__ = ('Every setting, as plain values (one immutable snapshot; fields generated '
                    'from PARAMS).')


def plain(value: Any, spec: Optional[ParamSpec] = None) -> Any:
    """Return ``value`` as Settings holds it: arrays as tuples (an unset array: ())."""
    # arrays arrive as lists (or array.array); the frozen config holds tuples. An empty
    # YAML list may arrive with no value at all (NOT_SET): an empty list
    if isinstance(value, (list, tuple)) or type(value).__name__ == 'array':
        return tuple(value)
    if value is None and spec is not None and spec.type is tuple:
        return ()
    return value


def changed(old: Any, new: Any) -> List[str]:
    """Return the names of the settings whose values differ between two Settings."""
    return [f.name for f in fields(Settings) if getattr(old, f.name) != getattr(new, f.name)]


# ---- the terminal chat's flags -------------------------------------------------------------
def _flag_type(spec: ParamSpec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = spec.type(text)  # a ValueError: argparse says 'invalid int value'
        problem = spec.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    convert.__name__ = spec.type.__name__
    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag to ``parser`` for every row marked ``cli`` (default and help from it)."""
    for spec in PARAMS:
        if not spec.cli:
            continue
        help_text = spec.description.replace('%', '%%')
        if spec.type is bool:
            action = 'store_true' if not spec.default else argparse.BooleanOptionalAction
            parser.add_argument(spec.flag, action=action, default=spec.default, help=help_text)
        else:
            parser.add_argument(spec.flag, type=_flag_type(spec), default=spec.default,
                                choices=spec.choices or None, help=help_text)


def from_args(args: argparse.Namespace) -> Settings:
    """
    Return the Settings the flags of ``add_arguments`` give (other rows: their defaults).

    Raises ValueError when the combination is wrong (``--do-sample --temperature 0``).
    """
    settings = Settings(**{spec.name: getattr(args, spec.name) for spec in PARAMS if spec.cli})
    problem = settings.problem()
    if problem:
        raise ValueError(problem)
    return settings

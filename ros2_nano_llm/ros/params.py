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
The node's parameters: one table, declared with descriptors, read into a frozen NodeConfig.

Each parameter has a kind that says when a change takes effect:

- ``live``: applied to the next reply (sampling settings, busy policy, image age, ...);
  ``system_prompt`` also resets the chat.
- ``reload``: needs the model or the chat to be built again (model, api, template, ...);
  refused while a model is loaded (inactive or active), with the way out in the reason.
- ``startup``: read once when the node starts (read-only afterwards: a different value is
  refused; setting the current value again succeeds, as ``ros2 param load`` of the file
  the node started with does).

A ``reload`` or ``startup`` parameter set to the value it already has is always accepted.
"""

from dataclasses import field, fields, make_dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)

from ..models import auto_api

BUSY_POLICIES = ('queue', 'interrupt', 'drop')
LIVE, RELOAD, STARTUP = 'live', 'reload', 'startup'
# api: 'auto' lets the library choose (llama_cpp for a .gguf model where it is installed)
APIS = ('auto', 'hf', 'llama_cpp', 'openai', 'mlc')

_TYPE_WORDS = {bool: 'a boolean', int: 'an integer', float: 'a float (with a decimal point)',
               str: 'a string', tuple: "a list of strings such as ['DATE', 'TIME']"}
_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          tuple: ParameterType.PARAMETER_STRING_ARRAY}


class ParamSpec:
    """
    One parameter: name, default, meaning, allowed range and when a change applies.

    ``backend``/``option``: the parameter is option ``option`` of that backend (``api``).
    Its ``default`` means 'the backend decides': passed as None when ``none_default``,
    and left out when ``api`` is 'auto' (the library picks the backend).
    """

    __slots__ = ('name', 'default', 'description', 'kind', 'low', 'high', 'constraints',
                 'backend', 'option', 'none_default')

    def __init__(self, name: str, default: Any, description: str, kind: str = LIVE,
                 low: Optional[float] = None, high: Optional[float] = None,
                 constraints: str = '', backend: str = '', option: str = '',
                 none_default: bool = True):
        self.name, self.default, self.description, self.kind = name, default, description, kind
        self.low, self.high, self.constraints = low, high, constraints
        self.backend, self.option, self.none_default = backend, option or name, none_default

    @property
    def type(self) -> type:  # noqa: A003 - the parameter's Python type
        """Return the Python type of the parameter's values (tuple: a string list)."""
        return type(self.default)

    def descriptor(self) -> ParameterDescriptor:
        """Build the ROS parameter descriptor: type, range and description."""
        desc = ParameterDescriptor(
            name=self.name, type=_TYPES[self.type], description=self.description,
            additional_constraints=self.constraints)
        if self.type is tuple:
            # an empty YAML list ([]) loads as a bool or byte array: take any array type
            # here and check the values in NodeConfig.problem()
            desc.dynamic_typing = True
        if self.low is not None and self.type is int:
            desc.integer_range = [IntegerRange(from_value=int(self.low),
                                               to_value=int(self.high), step=1)]
        elif self.low is not None and self.type is float:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return desc


PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('model', 'default', "model directory, .gguf file, hub id, or 'default' (the "
              'embedded SmolLM2-135M-Instruct)', RELOAD),
    ParamSpec('api', 'auto', "backend: 'auto' (llama_cpp for a .gguf model where it is "
              "installed, else hf), 'hf' (transformers), 'llama_cpp', 'openai' (a server), "
              "'mlc' (Jetson, where mlc_llm is installed)", RELOAD,
              constraints='one of: ' + ', '.join(APIS)),
    ParamSpec('n_threads', 0, 'llama_cpp: CPU threads; 0 for every CPU', RELOAD, 0, 1024,
              backend='llama_cpp'),
    ParamSpec('n_ctx', 0, "llama_cpp: context size; 0 for max_context_len or the model's own",
              RELOAD, 0, 1 << 20, backend='llama_cpp'),
    ParamSpec('n_gpu_layers', -1, 'llama_cpp: layers offloaded to the GPU; -1 for all',
              RELOAD, -1, 65536, backend='llama_cpp', none_default=False),
    ParamSpec('base_url', '', "openai: server URL; '' for $OPENAI_BASE_URL or "
              'http://127.0.0.1:8000', RELOAD, backend='openai'),
    ParamSpec('quantization', '', "backend quantization setting; '' for the model's own",
              RELOAD),
    ParamSpec('max_context_len', 0, "context window in tokens; 0 for the model's own", RELOAD,
              0, 1 << 20),
    ParamSpec('chat_template', '', "chat template name or JSON file; '' picks it from the model",
              RELOAD),
    ParamSpec('functions_file', '', "YAML list of bot functions -> ROS services; '' for none",
              RELOAD),
    ParamSpec('builtin_functions', (), 'built-in bot functions the model may call, by name '
              "(e.g. ['DATE', 'TIME']); [] for none", RELOAD),
    ParamSpec('history_file', '', 'JSON file the chat is saved to after every change and '
              "loaded from at configure (docs/history-format.md); '' keeps it in memory only",
              RELOAD),
    ParamSpec('system_prompt', '', "system prompt; '' for the template's default. A change "
              'resets the chat; refused when it leaves too little room for the chat', LIVE),
    ParamSpec('reply_prefix', '', 'text every reply starts with (a function call in it runs); '
              "'' for none. Refused when it does not fit the room kept for replies", LIVE),
    ParamSpec('tool_choice', 'auto', "function calls in replies to ~/input/text: 'auto' (the "
              "model may call), 'required' (each reply starts with a call), 'none' (no calls) "
              "or a loaded function's name (that one is called)", LIVE),
    ParamSpec('max_new_tokens', 128, 'most tokens in one reply', LIVE, 1, 8192),
    ParamSpec('min_new_tokens', -1, 'fewest tokens in one reply before a stop token counts; '
              '-1 for no minimum', LIVE, -1, 8192),
    ParamSpec('do_sample', False, 'sample the next token (True) or pick the most likely one',
              LIVE),
    ParamSpec('temperature', 0.7, 'sampling temperature (> 0 when do_sample)', LIVE, 0.0, 10.0),
    ParamSpec('top_p', 0.95, 'nucleus sampling mass, in (0, 1]', LIVE, 0.0, 1.0),
    ParamSpec('repetition_penalty', 1.0, 'penalty on tokens already in the chat (> 0; 1.0 is '
              'off)', LIVE, 0.0, 10.0),
    ParamSpec('wrap_tokens', 0, 'when the chat overflows, keep about this many newest tokens; '
              '0 for half the chat. Refused when it leaves no room to wrap (above the chat '
              'limit minus the system prompt)', LIVE, 0, 1 << 20),
    ParamSpec('busy_policy', 'queue', 'a prompt that arrives during a reply: queue it, '
              'interrupt the reply, or drop the prompt', LIVE,
              constraints='one of: ' + ', '.join(BUSY_POLICIES)),
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
SAMPLING = ('max_new_tokens', 'min_new_tokens', 'do_sample', 'temperature', 'top_p',
            'repetition_penalty')


class _ConfigMethods:
    """What a NodeConfig can do besides holding the values (the fields come from PARAMS)."""

    __slots__ = ()

    def sampling(self) -> Dict[str, Any]:
        """Return the keyword arguments of ``NanoLLM.generate()`` that set the sampling."""
        return {name: getattr(self, name) for name in SAMPLING}

    def library_api(self) -> str:
        """Return the backend to load: ``api``, or with ``auto`` the fastest installed one."""
        return auto_api(self.model) if self.api == 'auto' else self.api

    def backend_options(self) -> Dict[str, Any]:
        """
        Return the options of the backend to load that the parameters set.

        Every option of that backend is passed (None where the parameter says 'the backend
        decides'), for ``NanoLLM.from_pretrained``.
        """
        api = self.library_api()
        return {spec.option: None if value == spec.default and spec.none_default else value
                for spec, value in ((spec, getattr(self, spec.name)) for spec in PARAMS)
                if spec.backend == api}

    def updated(self, values: Dict[str, Any]) -> 'NodeConfig':
        """Return a copy with ``values`` (name -> value) changed, checked as a whole."""
        data = {spec.name: getattr(self, spec.name) for spec in PARAMS}
        data.update({name: _plain(value, SPECS.get(name)) for name, value in values.items()})
        config = NodeConfig(**data)
        problem = config.problem()
        if problem:
            raise ValueError(problem)
        return config

    def problem(self) -> str:
        """Return what is wrong with this combination of values, or '' when it is fine."""
        if self.busy_policy not in BUSY_POLICIES:
            return (f"busy_policy must be one of {', '.join(BUSY_POLICIES)}; "
                    f'got {self.busy_policy!r}')
        if self.api not in APIS:
            return f"api must be one of {', '.join(APIS)}; got {self.api!r}"
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


# NodeConfig: every parameter of the node as a plain value, one frozen snapshot. Its fields
# are generated from PARAMS (the one place a parameter is declared).
NodeConfig = make_dataclass(
    'NodeConfig',
    [(spec.name, spec.type, field(default=spec.default)) for spec in PARAMS],
    bases=(_ConfigMethods,), frozen=True)
NodeConfig.__module__ = __name__
NodeConfig.__doc__ = ('Every parameter of the node, as plain values (one immutable snapshot; '
                      'fields generated from PARAMS).')


def declare(node: Any) -> NodeConfig:
    """
    Declare every parameter on ``node`` (overrides from --params-file apply); return them.

    Raises ValueError naming the parameter when an override has the wrong type or range.
    """
    for spec in PARAMS:
        default = list(spec.default) if spec.type is tuple else spec.default
        try:
            node.declare_parameter(spec.name, default, spec.descriptor())
        except Exception as error:  # noqa: BLE001 - rclpy raises several types; all mean this
            raise ValueError(f"parameter '{spec.name}': {error}; expected "
                             f'{_TYPE_WORDS[spec.type]} such as {spec.default!r}'
                             ) from error
    config = read(node)
    problem = config.problem()
    if problem:
        raise ValueError(problem)
    return config


def _plain(value: Any, spec: Optional[ParamSpec] = None) -> Any:
    # arrays arrive as lists (or array.array); the frozen config holds tuples. An empty
    # YAML list may arrive with no value at all (NOT_SET): an empty list
    if isinstance(value, (list, tuple)) or type(value).__name__ == 'array':
        return tuple(value)
    if value is None and spec is not None and spec.type is tuple:
        return ()
    return value


def read(node: Any) -> NodeConfig:
    """Return the node's current parameter values as a NodeConfig."""
    return NodeConfig(**{spec.name: _plain(node.get_parameter(spec.name).value, spec)
                         for spec in PARAMS})


def check_change(config: NodeConfig, changes: Iterable[Any], model_loaded: bool,
                 state: str) -> Tuple[Optional[NodeConfig], str]:
    """
    Check a parameter change (rclpy ``Parameter`` objects) against the rules above.

    Returns ``(new_config, '')`` when it may go ahead (``new_config`` is None when no
    parameter of ours changed), or ``(None, reason)`` when it must be refused.
    """
    values: Dict[str, Any] = {}
    for param in changes:
        spec = SPECS.get(param.name)
        if spec is None:
            continue  # not ours (use_sim_time, qos overrides): rclpy's own rules apply
        value = _plain(param.value, spec)
        same = value == getattr(config, param.name)
        if spec.kind == STARTUP and not same:
            return None, (f"'{param.name}' is read-only: it is read once when the node starts "
                          f'(give it with --params-file or -p {param.name}:=...)')
        if spec.kind == RELOAD and model_loaded and not same:
            return None, (f"'{param.name}' needs the model to be loaded again and the node is "
                          f'{state}: deactivate and clean up the node, set it, then configure '
                          'again')
        values[param.name] = param.value
    if not values:
        return None, ''
    try:
        return config.updated(values), ''
    except (TypeError, ValueError) as error:
        return None, str(error)


def changed(old: NodeConfig, new: NodeConfig) -> List[str]:
    """Return the names of the parameters whose values differ between two configs."""
    return [f.name for f in fields(NodeConfig) if getattr(old, f.name) != getattr(new, f.name)]

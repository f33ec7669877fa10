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
Drive the installed nano_llm_node over real DDS, from another process, as `ros2 launch` would.

``NodeProcess`` starts the executable with ``--ros-args -r __node:=... --params-file ...``
(its log goes to a file the tests read) and always ends it: terminate, wait, kill.
``NodeClient`` is the test side: an rclpy node in its own context and thread that calls the
standard lifecycle services (``~/change_state``, ``~/get_state``), publishes prompts and
images, and collects what the node publishes, grouped by turn.
"""

import ctypes
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros2_nano_llm.msg import StreamToken
from ros2_nano_llm.srv import CallFunction, GetHistory, ListFunctions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG_TINY = REPO_ROOT / 'config' / 'nano_llm_tiny.yaml'
EXECUTABLE = 'nano_llm_node'
TRANSITIONS = {'configure': 1, 'cleanup': 2, 'activate': 3, 'deactivate': 4,
               'unconfigured_shutdown': 5, 'inactive_shutdown': 6, 'active_shutdown': 7}


def find_executable(executable: str = EXECUTABLE) -> str:
    """Return the path of an installed executable (PATH first, then the colcon install)."""
    found = shutil.which(executable)
    if found:
        return found
    installed = REPO_ROOT / 'install' / 'ros2_nano_llm' / 'lib' / 'ros2_nano_llm' / executable
    if installed.exists():
        return str(installed)
    raise RuntimeError(f'{executable} is not installed: run `bash scripts/setup.sh` and '
                       '`source scripts/env.sh` first')


def _die_with_parent() -> None:
    # the node must not outlive a test run that is killed (PR_SET_PDEATHSIG = 1)
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class NodeProcess:
    """The nano_llm_node executable as a child process, with its log in a file."""

    def __init__(self, log_path: os.PathLike, name: str = 'nano_llm', namespace: str = '',
                 params_file: Optional[os.PathLike] = CONFIG_TINY,
                 overrides: Optional[Dict[str, Any]] = None, executable: str = EXECUTABLE):
        self.name = name
        self.namespace = namespace.rstrip('/')
        self.fqn = f'{self.namespace}/{name}'
        self.log_path = pathlib.Path(log_path)
        argv = [find_executable(executable), '--ros-args', '-r', f'__node:={name}']
        if self.namespace:
            argv += ['-r', f'__ns:={self.namespace}']
        if params_file is not None:
            argv += ['--params-file', str(params_file)]
        for key, value in (overrides or {}).items():
            argv += ['-p', f'{key}:={_param_text(value)}']
        self.argv = argv
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0',
                   RCUTILS_LOGGING_BUFFERED_STREAM='0')
        self._log = open(self.log_path, 'wb')
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env, preexec_fn=_die_with_parent)

    @property
    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.process.poll() is None

    def log(self) -> str:
        """Return everything the node logged so far."""
        return self.log_path.read_text(errors='replace')

    def wait_for_log(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match:
        """Wait until a log line at or after char ``start`` matches ``pattern``; return it."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.log(), start)
            if match:
                return match
            if not self.alive:
                raise AssertionError(f'the node exited ({self.process.returncode}) before '
                                     f'logging {pattern!r}:\n{self.log()[-3000:]}')
            if time.monotonic() > deadline:
                raise AssertionError(f'no log line matched {pattern!r} in {timeout} s:\n'
                                     f'{self.log()[-3000:]}')
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int:
        """End the process: SIGINT (what `ros2 launch` sends), then SIGTERM, then SIGKILL."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0),
                          (signal.SIGKILL, 5.0)):
            if not self.alive:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        return self.process.returncode


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"  # a YAML string, whatever it holds
    return repr(value)


class Turn:
    """What arrived for one turn: the stream pieces, eos messages and tokens."""

    def __init__(self, turn_id: int):
        self.turn_id = turn_id
        self.pieces: List[Any] = []     # StreamToken messages with eos False
        self.eos: List[Any] = []        # StreamToken messages with eos True
        self.first_piece_at: Optional[float] = None
        self.last_piece_at: Optional[float] = None
        self.eos_at: Optional[float] = None

    @property
    def text(self) -> str:
        """Return the pieces joined in order."""
        return ''.join(msg.text for msg in sorted(self.pieces, key=lambda m: m.token_index))


class PretendRobot:
    """
    A pretend robot in this process: services under ``prefix`` that record what they receive.

    It serves ``set_headlights`` (std_srvs/SetBool) and ``move_forward`` (std_srvs/Trigger),
    plus ``services`` ({name: (type, handler)}); handlers call :meth:`record`. Each request
    is kept as :meth:`entry` makes it.
    """

    def __init__(self, name: str, prefix: str, services: Optional[Dict[str, Any]] = None,
                 threads: int = 4, close_timeout: float = 5.0):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.requests: List[Any] = []
        self._cond = threading.Condition()
        self._close_timeout = close_timeout
        group = ReentrantCallbackGroup()
        served = {'set_headlights': (SetBool, self._set_headlights),
                  'move_forward': (Trigger, self._move_forward), **(services or {})}
        for service, (srv_type, handler) in served.items():
            self.node.create_service(srv_type, f'{prefix}/{service}', handler,
                                     callback_group=group)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving; the node is destroyed only once the spin thread has left it."""
        self.executor.shutdown(timeout_sec=self._close_timeout)
        self._thread.join(10.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def entry(self, action: str, request: Any) -> Any:
        """Return what is kept of one request (here: ``(action, request)``)."""
        return action, request

    def record(self, action: str, request: Any) -> None:
        """Keep one request and wake whoever waits for it."""
        with self._cond:
            self.requests.append(self.entry(action, request))
            self._cond.notify_all()

    def count(self) -> int:
        """Return how many requests arrived so far."""
        with self._cond:
            return len(self.requests)

    def since(self, mark: int) -> List[Any]:
        """Return the requests that arrived after the first ``mark``."""
        with self._cond:
            return list(self.requests[mark:])

    def _set_headlights(self, request: Any, response: Any) -> Any:
        self.record('set_headlights', request)
        response.success = True
        response.message = f"headlights {'on' if request.data else 'off'}"
        return response

    def _move_forward(self, request: Any, response: Any) -> Any:
        self.record('move_forward', request)
        response.success, response.message = True, 'moved 0.5 m'
        return response


class NodeClient:
    """The test side of the DDS link to one nano_llm node."""

    def __init__(self, target: str = '/nano_llm'):
        self.target = target.rstrip('/')
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ.get('ROS_DOMAIN_ID', '0')))
        self.node = rclpy.create_node('nano_llm_test_client', context=self.context)
        self._lock = threading.Condition()
        self.turns: Dict[int, Turn] = {}
        self.replies: List[str] = []
        self.tokens: List[str] = []
        self.diagnostics: List[Any] = []
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                              reliability=ReliabilityPolicy.RELIABLE)
        node, t = self.node, self.target
        self.text_pub = node.create_publisher(String, f'{t}/input/text', reliable)
        self.image_pub = node.create_publisher(Image, f'{t}/input/image', 10)
        self.compressed_pub = node.create_publisher(
            CompressedImage, f'{t}/input/image/compressed', 10)
        node.create_subscription(StreamToken, f'{t}/output/stream', self._on_stream, reliable)
        node.create_subscription(String, f'{t}/output/tokens', self._on_tokens, reliable)
        node.create_subscription(String, f'{t}/output/reply', self._on_reply, reliable)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 100)
        self.clients = {
            'change_state': node.create_client(ChangeState, f'{t}/change_state'),
            'get_state': node.create_client(GetState, f'{t}/get_state'),
            'set_parameters': node.create_client(SetParameters, f'{t}/set_parameters'),
            'get_parameters': node.create_client(GetParameters, f'{t}/get_parameters'),
            'reset': node.create_client(Trigger, f'{t}/reset'),
            'stop': node.create_client(Trigger, f'{t}/stop'),
            'get_history': node.create_client(GetHistory, f'{t}/get_history'),
            'call_function': node.create_client(CallFunction, f'{t}/call_function'),
            'list_functions': node.create_client(ListFunctions, f'{t}/list_functions'),
        }
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(node)
        self._spin = threading.Thread(target=self._executor.spin, daemon=True)
        self._spin.start()

    def close(self) -> None:
        """Stop spinning, destroy the node once the spin thread has left it, shut down."""
        # (destroyed while the spin thread was still in its wait set, one close in a few
        # dozen segfaulted the test process)
        self._executor.shutdown(timeout_sec=5.0)
        self._spin.join(10.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    # ---- callbacks ----------------------------------------------------------------------
    def _on_stream(self, msg: Any) -> None:
        now = time.monotonic()
        with self._lock:
            turn = self.turns.setdefault(msg.turn_id, Turn(msg.turn_id))
            if msg.eos:
                turn.eos.append(msg)
                turn.eos_at = now
            else:
                turn.pieces.append(msg)
                turn.first_piece_at = turn.first_piece_at or now
                turn.last_piece_at = now
            self._lock.notify_all()

    def _on_tokens(self, msg: Any) -> None:
        with self._lock:
            self.tokens.append(msg.data)

    def _on_reply(self, msg: Any) -> None:
        with self._lock:
            self.replies.append(msg.data)
            self._lock.notify_all()

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(self.target):
                with self._lock:
                    self.diagnostics.append(
                        (status.level, status.message, {kv.key: kv.value for kv in status.values}))
                    self._lock.notify_all()

    # ---- services -----------------------------------------------------------------------
    def call(self, name: str, request: Any = None, timeout: float = 60.0) -> Any:
        """Call one of the node's services; return the response (bounded waits)."""
        client = self.clients[name]
        if not client.wait_for_service(timeout_sec=min(timeout, 30.0)):
            raise AssertionError(f'{self.target}/{name} is not available')
        request = request if request is not None else client.srv_type.Request()
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            raise AssertionError(f'{self.target}/{name} did not answer in {timeout} s')
        return future.result()

    def transition(self, label: str, timeout: float = 300.0) -> bool:
        """Ask for a lifecycle transition by label ('configure', ...); return its success."""
        request = self.clients['change_state'].srv_type.Request()
        request.transition.id = TRANSITIONS[label]
        return self.call('change_state', request, timeout).success

    def state(self) -> str:
        """Return the node's lifecycle state label."""
        return self.call('get_state').current_state.label

    def set_params(self, **values: Any) -> List[Any]:
        """Set parameters through ``~/set_parameters`` (one result per value)."""
        request = self.clients['set_parameters'].srv_type.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()
                              for name, value in values.items()]
        return list(self.call('set_parameters', request).results)

    def set_raw_param(self, name: str, value_msg: Any) -> Any:
        """Set one parameter from a ``rcl_interfaces/ParameterValue`` (any type); return result."""
        request = self.clients['set_parameters'].srv_type.Request()
        request.parameters = [ParameterMsg(name=name, value=value_msg)]
        return self.call('set_parameters', request).results[0]

    def get_param(self, name: str) -> Any:
        """Return one parameter's value (its Python value)."""
        request = self.clients['get_parameters'].srv_type.Request(names=[name])
        return parameter_value_to_python(self.call('get_parameters', request).values[0])

    def history(self) -> Any:
        """Return the GetHistory response."""
        response = self.call('get_history')
        assert response.success, response.message
        return response

    def history_texts(self) -> List[tuple]:
        """Return the chat as (role, type, text) tuples."""
        return [(e.role, e.type, e.text) for e in self.history().entries]

    # ---- topics -------------------------------------------------------------------------
    def wait_connected(self, timeout: float = 20.0) -> None:
        """Wait until the prompt publisher and the stream subscription are matched."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text_pub.get_subscription_count() > 0 and \
                    self.node.count_publishers(f'{self.target}/output/stream') > 0 and \
                    self.node.count_publishers(f'{self.target}/output/reply') > 0:
                time.sleep(0.5)  # let the other side's discovery catch up too
                return
            time.sleep(0.05)
        raise AssertionError(f'{self.target} topics did not connect within {timeout} s')

    def publish(self, text: str) -> float:
        """Publish a prompt; return the time it was sent (time.monotonic())."""
        sent = time.monotonic()
        self.text_pub.publish(String(data=text))
        return sent

    def mark(self) -> Dict[str, int]:
        """Return counters to wait from: the newest turn id and the replies seen so far."""
        with self._lock:
            return {'turn': max(self.turns, default=0), 'replies': len(self.replies),
                    'diagnostics': len(self.diagnostics)}

    def wait_turn_end(self, after: int, timeout: float = 60.0, count: int = 1) -> List[Turn]:
        """Wait for ``count`` turns newer than ``after`` to end with eos; return them in order."""
        def ended():
            done = [t for i, t in sorted(self.turns.items()) if i > after and t.eos]
            return done if len(done) >= count else None
        with self._lock:
            if not self._lock.wait_for(ended, timeout):
                raise AssertionError(f'{count} turn(s) after {after} did not end in {timeout} s;'
                                     f' turns: {sorted(self.turns)}')
            return ended()[:count]

    def ask(self, text: str, timeout: float = 60.0) -> tuple:
        """Publish a prompt and wait for its turn; return ``(turn, reply_text)``."""
        mark = self.mark()
        self.publish(text)
        turn, = self.wait_turn_end(mark['turn'], timeout)
        reply = self.wait_replies(mark['replies'], 1, timeout)[0]
        return turn, reply

    def wait_replies(self, after: int, count: int = 1, timeout: float = 30.0) -> List[str]:
        """Wait for ``count`` ``~/output/reply`` messages after the first ``after``."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.replies) >= after + count, timeout):
                raise AssertionError(f'no reply within {timeout} s')
            return self.replies[after:after + count]

    def wait_diagnostics(self, predicate, after: int = 0, timeout: float = 30.0) -> Dict[str, str]:
        """Wait for a /diagnostics status (index >= ``after``) whose values pass ``predicate``."""
        def found():
            for level, message, values in self.diagnostics[after:]:
                if predicate(values):
                    return values
            return None
        with self._lock:
            if not self._lock.wait_for(found, timeout):
                raise AssertionError(f'no matching /diagnostics within {timeout} s')
            return found()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every turn seen so far has ended, then a little for late messages."""
        with self._lock:
            self._lock.wait_for(lambda: all(t.eos for t in self.turns.values()), timeout)
        time.sleep(0.2)

    def no_new_turn(self, after: int, seconds: float) -> bool:
        """Return True if no turn newer than ``after`` started within ``seconds``."""
        time.sleep(seconds)
        with self._lock:
            return max(self.turns, default=0) <= after

    # ---- images -------------------------------------------------------------------------
    def publish_image(self, rgb: Any, encoding: str = 'rgb8', step: Optional[int] = None) -> None:
        """Publish an (H, W, 3) uint8 array as sensor_msgs/Image (``step`` may be wrong)."""
        height, width = rgb.shape[:2]
        msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                    step=step if step is not None else width * rgb.shape[2],
                    data=rgb.tobytes())
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.image_pub.publish(msg)

    def publish_compressed(self, data: bytes, fmt: str = 'jpeg') -> None:
        """Publish encoded image bytes as sensor_msgs/CompressedImage."""
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.compressed_pub.publish(msg)


def start_node(tmp_dir: os.PathLike, overrides: Dict[str, Any], activate: bool = True,
               name: str = 'nano_llm', params_file: Optional[os.PathLike] = CONFIG_TINY,
               configure_timeout: float = 300.0, first_state: str = 'unconfigured') -> tuple:
    """
    Start a node process and a client; configure and activate it unless told not to.

    ``first_state`` is the state to wait for first ('active' for a node that autostarts).
    Returns ``(process, client)``; the caller must ``stop_node`` them (a fixture finalizer).
    """
    process = NodeProcess(pathlib.Path(tmp_dir) / f'{name}.log', name=name,
                          params_file=params_file, overrides=overrides)
    client = None
    try:
        client = NodeClient(process.fqn)
        wait_for_state(client, process, first_state, timeout=configure_timeout)
        if first_state == 'active':
            client.wait_connected()
        elif activate:
            assert client.transition('configure', configure_timeout), process.log()[-3000:]
            assert client.transition('activate'), process.log()[-3000:]
            client.wait_connected()
        return process, client
    except BaseException:
        stop_node(process, client)
        raise


def wait_for_state(client: NodeClient, process: NodeProcess, label: str,
                   timeout: float = 60.0) -> None:
    """Wait until the node's ``~/get_state`` answers ``label`` (the node has started)."""
    deadline = time.monotonic() + timeout
    get_state = client.clients['get_state']
    while time.monotonic() < deadline:
        if not process.alive:
            raise AssertionError(f'the node exited:\n{process.log()[-3000:]}')
        if get_state.wait_for_service(timeout_sec=1.0):
            state = client.state()
            if state == label:
                return
        time.sleep(0.1)
    raise AssertionError(f'{process.fqn} did not reach {label!r} in {timeout} s:\n'
                         f'{process.log()[-3000:]}')


def stop_node(process: Optional[NodeProcess], client: Optional[NodeClient]) -> None:
    """Close the client and end the node process (never leaves it running)."""
    try:
        if client is not None:
            client.close()
    finally:
        if process is not None:
            process.stop()


def rss_after_cycles(process: NodeProcess, client: 'NodeClient', count: int) -> List[float]:
    """Configure and clean up the node ``count`` times; return its RSS (MiB) after each cycle."""
    sizes = []
    for _ in range(count):
        for label in ('configure', 'cleanup'):
            assert client.transition(label), f'{label} failed: {process.log()[-3000:]}'
        time.sleep(0.2)
        with open(f'/proc/{process.process.pid}/status') as status:
            sizes.append(next(int(line.split()[1]) / 1024 for line in status
                              if line.startswith('VmRSS:')))
    return sizes


def grep(process: NodeProcess, pattern: str, start: int = 0) -> Sequence[str]:
    """Return the node's log lines at or after char ``start`` that match ``pattern``."""
    return [line for line in process.log()[start:].splitlines() if re.search(pattern, line)]


def reference_replies(model: Any, turns: Sequence[Any], max_new_tokens: int = 24,
                      system_prompt: Optional[str] = None) -> List[str]:
    """
    Return the greedy replies the library gives to ``turns`` in one chat (the expected ones).

    Each turn is a prompt, or a ``(image, prompt)`` pair for a vision model.
    """
    from ros2_nano_llm import ChatHistory
    history = ChatHistory(model, system_prompt=system_prompt)
    replies = []
    for turn in turns:
        image, prompt = turn if isinstance(turn, tuple) else (None, turn)
        if image is not None:
            history.append('user', image=image)
        history.append('user', prompt)
        inputs, _ = history.embed_chat()
        reply = model.generate(inputs, kv_cache=history.kv_cache,
                               stop_tokens=history.stop_tokens, max_new_tokens=max_new_tokens)
        replies.append(reply.wait())
        history.append('bot', reply)
    return replies

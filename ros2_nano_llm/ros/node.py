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
The nano_llm lifecycle node: one model, one persistent chat, streamed replies over ROS 2.

Transitions (SPEC.md section 3): ``configure`` loads the model and builds the chat (on the
worker thread; a failure returns FAILURE with the reason logged, and configure may be tried
again after fixing the parameters); ``activate`` creates the subscriptions and services and
lets prompts in; ``deactivate`` stops any reply and goes quiet (the chat is kept);
``cleanup`` frees the model; ``shutdown`` works from any state.

Bot functions: at ``configure`` the robot actions of ``functions_file`` (each one ROS
service, see ``functions.ros_bridge``) and the ``builtin_functions`` become the functions
the model may call; their docs join the system prompt and every reply runs the calls it
makes. ``~/call_function`` runs one by name and ``~/list_functions`` lists them.

Threads: the executor's threads only run short callbacks; the node's one worker thread
(``worker.ChatWorker``) loads the model and reads each reply, which the model generates on
its own thread. Lifecycle services, inputs and the other services have separate callback
groups, so a long transition never holds up a prompt, a ``~/stop`` or ``/diagnostics``.
A robot action's service call waits on a worker thread (from a reply) or in a reentrant
service callback (``~/call_function``) while the other executor threads take its response.
"""

from concurrent.futures import TimeoutError as FutureTimeout
import os
import sys
import time
from typing import Any, Dict, List, Optional

from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from . import interfaces as ifc
from . import params
from .compat import initialized
from .worker import ChatSession, ChatWorker, LatestFrame, Prompt
from ..functions import BotFunctions, execute, parse_json_call
from ..functions.ros_bridge import RosServiceFunctions
from ..msg import StreamToken
from ..srv import CallFunction, GetHistory, ListFunctions

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
WAIT_S = 10.0            # bound on waits for the worker inside callbacks
FRAME_ERROR_REPEAT_S = 10.0  # the same bad-frame error is logged again after this long
# Each prompt crosses threads twice (executor -> worker -> model) and so does each token
# (model -> worker -> publisher). While the model thread runs Python code, a thread woken by
# such a hand-off waits up to the GIL switch interval: 5 ms by default, 1 ms here.
GIL_SWITCH_INTERVAL_S = 0.001


class ChatLifecycleNode(LifecycleNode):
    """A managed node that owns one ``NanoLLM`` and one persistent ``ChatHistory``."""

    def __init__(self, node_name: str = 'nano_llm', **kwargs):
        self._config: params.NodeConfig = params.NodeConfig()
        self._worker: Optional[ChatWorker] = None
        self._session: Optional[ChatSession] = None
        self._functions: Optional[List[Any]] = None  # the enabled bot functions (records)
        self._bridge: Optional[RosServiceFunctions] = None
        self._frames = LatestFrame()
        self._pub_tokens: Optional[LifecyclePublisher] = None
        self._pub_stream: Optional[LifecyclePublisher] = None
        self._pub_reply: Optional[LifecyclePublisher] = None
        self._live: List[Any] = []  # subscriptions and services that exist while active
        self._stats: Dict[str, float] = {}
        self._stats_turn = 0
        self._last_error = ''
        self._vision_note_logged = False
        self._frame_error = ('', 0.0)
        super().__init__(node_name, **kwargs)
        # The lifecycle and parameter services share the node's default (mutually exclusive)
        # group: a transition and a parameter change never run at the same time.
        self._lifecycle_group = self.default_callback_group
        self._input_group = MutuallyExclusiveCallbackGroup()
        # frames get their own group: decoding a JPEG never delays a prompt
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()
        # robot action clients: their responses arrive while a caller waits for them
        self._actions_group = ReentrantCallbackGroup()
        self._config = params.declare(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        self._pub_diagnostics = self.create_publisher(
            ifc.DiagnosticArray, ifc.DIAGNOSTICS, ifc.DIAGNOSTICS_QOS)
        self._diagnostics_timer = None
        if self._config.diagnostics_period > 0.0:
            self._diagnostics_timer = self.create_timer(
                self._config.diagnostics_period, self.publish_diagnostics,
                callback_group=self._service_group)
        self._autostart_timer = None
        if self._config.autostart:
            self._autostart_timer = self.create_timer(
                0.0, self._autostart, callback_group=self._lifecycle_group)

    # ---- lifecycle --------------------------------------------------------------------
    @property
    def state(self) -> str:
        """Return the lifecycle state's label ('unconfigured', 'inactive', 'active', ...)."""
        return self._state_machine.current_state[1]

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and build the chat on the worker thread; FAILURE says why."""
        config = self._config
        log = self.get_logger()
        log.info(f"configuring: loading model '{config.model}' (api '{config.api}')")
        start = time.monotonic()
        try:
            functions = self._load_functions(config)
        except (ValueError, RuntimeError) as error:
            self._unload_functions()
            return self._configure_failed(
                f'bot functions: {error}', 'functions_file <path> or builtin_functions '
                "\"['DATE', 'TIME']\"")
        worker = ChatWorker(self, lambda: self._config, log)
        try:
            future = worker.submit_call(
                lambda: ChatSession.load(config, self._frames, functions))
            session = future.result(timeout=config.load_timeout)
        except FutureTimeout:
            future.add_done_callback(_close_late_session)
            worker.close(timeout=0.0)
            self._unload_functions()
            return self._configure_failed(
                f'the model did not load within load_timeout={config.load_timeout:g} s')
        except Exception as error:  # noqa: BLE001 - every load error means FAILURE + reason
            worker.close(timeout=WAIT_S)
            self._unload_functions()
            return self._configure_failed(f'{type(error).__name__}: {error}')
        worker.session = session
        self._worker, self._session, self._functions = worker, session, functions
        self._pub_tokens = self.create_lifecycle_publisher(
            String, ifc.OUTPUT_TOKENS, ifc.STREAM_QOS)
        self._pub_stream = self.create_lifecycle_publisher(
            StreamToken, ifc.OUTPUT_STREAM, ifc.STREAM_QOS)
        self._pub_reply = self.create_lifecycle_publisher(
            String, ifc.OUTPUT_REPLY, ifc.REPLY_QOS)
        self._last_error = ''
        self._vision_note_logged = False
        model = session.model
        log.info(f"configured: '{model.name}' in {time.monotonic() - start:.1f} s, context "
                 f'{model.config.max_context_len} tokens, template '
                 f"'{session.history.template.name}', vision "
                 f"{'yes' if model.has_vision else 'no'}, functions "
                 f"{', '.join(f.name for f in functions or ()) or 'none'}")
        return SUCCESS

    def _configure_failed(self, reason: str, fix: str = 'model <path>'
                          ) -> TransitionCallbackReturn:
        self._last_error = f"configure failed: {reason.rstrip('. ')}"  # '. Fix' follows
        self.get_logger().error(
            f'{self._last_error}. Fix the parameter (ros2 param set '
            f'{self.get_fully_qualified_name()} {fix}) and configure again')
        return FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create the subscriptions and services, then let prompts in."""
        result = super().on_activate(state)
        if result != SUCCESS:
            return result
        images, services = self._image_group, self._service_group
        self._live = [
            self.create_subscription(String, ifc.INPUT_TEXT, self._on_text, ifc.PROMPT_QOS,
                                     callback_group=self._input_group),
            self.create_subscription(Image, ifc.INPUT_IMAGE, self._on_image, ifc.IMAGE_QOS,
                                     callback_group=images),
            self.create_subscription(CompressedImage, ifc.INPUT_IMAGE_COMPRESSED,
                                     self._on_image, ifc.IMAGE_QOS, callback_group=images),
            self.create_service(Trigger, ifc.RESET, self._on_reset, callback_group=services),
            self.create_service(Trigger, ifc.STOP, self._on_stop, callback_group=services),
            self.create_service(GetHistory, ifc.GET_HISTORY, self._on_get_history,
                                callback_group=services),
            self.create_service(CallFunction, ifc.CALL_FUNCTION, self._on_call_function,
                                callback_group=services),
            self.create_service(ListFunctions, ifc.LIST_FUNCTIONS, self._on_list_functions,
                                callback_group=services),
        ]
        self._worker.resume()
        topic = self.resolve_topic_name(ifc.INPUT_TEXT)
        self.get_logger().info(f'active: listening on {topic}')
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop any reply, drop waiting prompts and go quiet; the chat is kept."""
        self._quiet()
        self.get_logger().info('inactive: replies stopped, chat kept')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model, the chat and the publishers."""
        self._release()
        self.get_logger().info('cleaned up: model freed')
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop and free everything, from whichever state the node is in."""
        self._quiet()
        self._release()
        self.get_logger().info('shut down')
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free everything after an error in a transition; the node goes back to unconfigured."""
        self.get_logger().error(f'error in a transition from {state.label}: releasing all')
        self._quiet()
        self._release()
        return SUCCESS

    def _quiet(self) -> None:
        if self._worker is not None:
            self._worker.pause()
            if not self._worker.wait_idle(WAIT_S):
                self.get_logger().warning(f'the reply did not stop within {WAIT_S:g} s')
        for entity in self._live:
            if hasattr(entity, 'srv_type'):
                self.destroy_service(entity)
            else:
                self.destroy_subscription(entity)
        self._live = []

    def _release(self) -> None:
        if self._worker is not None:
            if not self._worker.close(WAIT_S):
                self.get_logger().warning('the worker thread did not end in time')
            self._worker = None
        for name in ('_pub_tokens', '_pub_stream', '_pub_reply'):
            publisher = getattr(self, name)
            if publisher is not None:
                setattr(self, name, None)
                self.destroy_lifecycle_publisher(publisher)
        if self._session is not None:
            self._session.close()
            self._session = None
        self._unload_functions()
        self._frames.clear()

    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        self._autostart_timer = None
        self.get_logger().info('autostart: configure and activate')
        if self.trigger_configure() == SUCCESS:
            self.trigger_activate()

    # ---- bot functions ----------------------------------------------------------------
    def _load_functions(self, config: params.NodeConfig) -> Optional[List[Any]]:
        """
        Return the bot functions the model may call (None: function calling is off).

        ``builtin_functions`` names library functions (``DATE``, ``TIME``);
        ``functions_file`` lists robot actions, whose service clients are created here
        (``functions.ros_bridge``). Runs in ``on_configure`` before the model loads; raises
        ValueError saying what to fix.
        """
        functions: List[Any] = []
        for name in dict.fromkeys(config.builtin_functions):
            record = BotFunctions.find(name)  # imports the built-ins on first use
            if record is None or record.source == 'ros':
                available = [f.name for f in BotFunctions.list(all=True) if f.source != 'ros']
                raise ValueError(f'builtin_functions: there is no built-in function {name!r}; '
                                 f"available: {', '.join(available) or 'none'}")
            functions.append(record)
        if config.functions_file:
            self._bridge = RosServiceFunctions.from_yaml(
                self, config.functions_file, callback_group=self._actions_group)
            functions.extend(self._bridge.functions)
            services = ', '.join(f'{a.name} -> {a.service}'
                                 for a in self._bridge.actions.values())
            self.get_logger().info(f"robot actions from '{config.functions_file}': "
                                   f"{services or 'none (the file lists none)'}")
        return functions or None

    def _unload_functions(self) -> None:
        """Undo ``_load_functions``: unregister the robot actions, destroy their clients."""
        bridge, self._bridge, self._functions = self._bridge, None, None
        if bridge is not None:
            bridge.destroy()

    def _on_call_function(self, request: CallFunction.Request,
                          response: CallFunction.Response) -> CallFunction.Response:
        functions = self._functions
        log = self.get_logger()
        if not functions:
            response.success = False
            response.result = ('error: no bot functions are enabled on this node (set '
                               'functions_file or builtin_functions and configure again)')
            log.warning(f'~/call_function {request.name!r}: {response.result}')
            return response
        # blocks this (reentrant) callback up to the function's timeout; a robot action's
        # response is taken by another executor thread meanwhile
        call = parse_json_call(request.name, request.args_json)
        result = execute(call, functions)
        response.success = not result.startswith('error:')
        response.result = result
        args = request.args_json.strip() or '{}'
        line = f'~/call_function {request.name}({args}) -> {result}'
        # (one call site per severity: rclpy refuses to change a call site's severity)
        if response.success:
            log.info(line)
        else:
            log.warning(line)
        return response

    def _on_list_functions(self, request: ListFunctions.Request,
                           response: ListFunctions.Response) -> ListFunctions.Response:
        functions = self._functions or []
        response.names = [f.name for f in functions]
        response.descriptions = [f.doc_line() for f in functions]
        response.docs = BotFunctions.generate_docs(functions=functions) if functions else ''
        return response

    # ---- inputs -----------------------------------------------------------------------
    def _on_text(self, msg: String) -> None:
        text = msg.data
        log = self.get_logger()
        if not text.strip():
            log.warning('empty prompt ignored: publish some text on '
                        f'{self.resolve_topic_name(ifc.INPUT_TEXT)}')
            return
        taken, note = self._worker.submit(Prompt(text, time.monotonic()))
        preview = text if len(text) <= 80 else f'{text[:77]}... ({len(text)} chars)'
        if taken:
            log.info(f'prompt {preview!r}' + (f' ({note})' if note else ''))
        else:
            log.warning(f'prompt dropped ({note}): {preview!r}')

    def _on_image(self, msg: Any) -> None:
        session = self._session
        if session is None or self._config.max_image_age <= 0.0:
            return
        if not session.model.has_vision:
            if not self._vision_note_logged:
                self._vision_note_logged = True
                self.get_logger().warning(
                    f"'{session.model.name}' has no vision: images are ignored and the chat "
                    'goes on in text (configure a vision model to use the camera)')
            return
        try:
            image = ifc.frame_to_rgb(msg)
        except ValueError as error:
            self._log_frame_error(f'{type(msg).__name__} frame dropped: {error}')
            return
        self._frames.put(image, time.monotonic())

    def _log_frame_error(self, text: str) -> None:
        last, when = self._frame_error
        now = time.monotonic()
        if text != last or now - when > FRAME_ERROR_REPEAT_S:
            self._frame_error = (text, now)
            self.get_logger().error(text)

    # ---- services ---------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        worker, session = self._worker, self._session
        stopped, dropped = worker.stop()
        try:
            worker.call(session.reset, timeout=WAIT_S)
        except FutureTimeout:
            response.success = False
            response.message = (f'the reply did not end within {WAIT_S:g} s; the chat will be '
                                'cleared as soon as it does')
            self.get_logger().warning(response.message)
            return response
        except Exception as error:  # noqa: BLE001 - reported to the caller
            response.success, response.message = False, f'reset failed: {error}'
            self.get_logger().error(response.message)
            return response
        notes = ['chat cleared (system prompt kept)']
        if stopped:
            notes.append('the reply in progress was stopped')
        if dropped:
            notes.append(f'{dropped} waiting prompts dropped')
        response.success, response.message = True, '; '.join(notes)
        self.get_logger().info(response.message)
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response
                 ) -> Trigger.Response:
        worker = self._worker
        stopped, dropped = worker.stop()
        idle = worker.wait_idle(WAIT_S)
        if stopped:
            message = f'stopped turn {worker.turn_id}; the partial reply is kept in the chat'
        else:
            message = 'no reply was in progress'
        if dropped:
            message += f'; {dropped} waiting prompts dropped'
        if not idle:
            message += f'; the reply did not end within {WAIT_S:g} s'
        response.success, response.message = idle, message
        self.get_logger().info(message)
        return response

    def _on_get_history(self, request: GetHistory.Request, response: GetHistory.Response
                        ) -> GetHistory.Response:
        session = self._session
        if session is None:
            response.success, response.message = False, 'no model loaded'
            return response
        history = session.history
        with history.lock:
            response.entries = ifc.chat_entries(history)
            response.cache_tokens = len(history.kv_cache)
        response.context_len = int(session.model.config.max_context_len)
        response.success = True
        response.message = f'{len(response.entries)} entries'
        return response

    # ---- parameters -------------------------------------------------------------------
    def _on_set_parameters(self, changes: List[Any]) -> SetParametersResult:
        state = self.state
        _, reason = params.check_change(self._config, changes, state != 'unconfigured', state)
        if reason:
            self.get_logger().warning(f'parameter change refused: {reason}')
        return SetParametersResult(successful=not reason, reason=reason)

    def _after_set_parameters(self, changes: List[Any]) -> None:
        old, new = self._config, params.read(self)
        self._config = new
        names = params.changed(old, new)
        if not names:
            return
        self.get_logger().info('parameters changed: ' + ', '.join(
            f'{name}={getattr(new, name)!r}' for name in names))
        worker, session = self._worker, self._session
        if worker is None or session is None:
            return
        if 'system_prompt' in names:
            worker.stop()
            worker.post(lambda: session.set_system_prompt(new.system_prompt),
                        'setting the system prompt')
            self.get_logger().info('system prompt changed: the chat was reset')
        if 'wrap_tokens' in names:
            worker.post(lambda: session.set_wrap_tokens(new.wrap_tokens), 'setting wrap_tokens')

    # ---- output (the worker's sink) ---------------------------------------------------
    def piece(self, turn_id: int, index: int, text: str) -> None:
        """Publish one new piece of reply text (worker thread)."""
        stream, tokens = self._pub_stream, self._pub_tokens
        if stream is None or tokens is None:
            return  # cleaned up while the reply ended
        stream.publish(ifc.stream_token(self.get_clock().now().to_msg(), turn_id, index, text))
        tokens.publish(String(data=text))

    def finished(self, turn_id: int, pieces: int, text: str,
                 stats: Optional[Dict[str, float]]) -> None:
        """Publish the end of a turn: the eos piece, the whole reply and the diagnostics."""
        stream, reply = self._pub_stream, self._pub_reply
        if stream is None or reply is None:
            return
        stamp = self.get_clock().now().to_msg()
        stream.publish(ifc.stream_token(stamp, turn_id, pieces, '', eos=True))
        reply.publish(String(data=text))
        if stats is not None:
            self._stats, self._stats_turn = stats, turn_id
        self.publish_diagnostics(generating=False)

    def publish_diagnostics(self, generating: Optional[bool] = None) -> None:
        """Publish the node's state and the last reply's figures on /diagnostics."""
        try:
            self._publish_diagnostics(generating)
        except Exception as error:  # noqa: B902 - a timer callback must never kill the node
            # cleanup may free the model while this reads it: skip this report, not the node
            self.get_logger().debug(f'diagnostics skipped: {error}')

    def _publish_diagnostics(self, generating: Optional[bool]) -> None:
        state, config, session, worker = self.state, self._config, self._session, self._worker
        stats = self._stats
        values: Dict[str, Any] = {
            'state': state, 'model': config.model, 'api': config.api,
            'turn_id': worker.turn_id if worker else 0,
            'generating': bool(worker and worker.busy) if generating is None else generating,
            'queue_length': worker.queue_length if worker else 0,
            'stats_turn_id': self._stats_turn,
            'last_ttft_ms': 1000.0 * stats.get('time_to_first_token', float('nan')),
            'last_prompt_setup_ms': 1000.0 * worker.last_setup_s if worker else float('nan'),
            'tokens_per_second': stats.get('decode_rate', float('nan')),
            'prefill_tokens_per_second': stats.get('prefill_rate', float('nan')),
            'input_tokens': int(stats.get('input_tokens', 0)),
            'output_tokens': int(stats.get('output_tokens', 0)),
            'cache_tokens': len(session.history.kv_cache) if session else 0,
            'context_size': session.model.config.max_context_len if session else 0,
            'chat_entries': len(session.history) if session else 0,
            'functions': ', '.join(f.name for f in self._functions or ()),
            'memory_rss_mb': _rss_mb(),
        }
        if self._last_error:
            level, message = ifc.DiagnosticStatus.ERROR, self._last_error
        elif state == 'active':
            level = ifc.DiagnosticStatus.OK
            message = 'generating' if values['generating'] else 'idle'
        else:
            level, message = ifc.DiagnosticStatus.OK, state
        name = f'nano_llm: {self.get_fully_qualified_name()}'
        hardware_id = session.model.name if session else ''
        self._pub_diagnostics.publish(ifc.diagnostics(
            self.get_clock().now().to_msg(), name, hardware_id, level, message, values))

    def release(self) -> None:
        """Stop the worker and free the model (on exit, whatever the state)."""
        self._quiet()
        self._release()


def _close_late_session(future: Any) -> None:
    # a load that finished after configure gave up on it: free the model at once
    if future.exception() is None:
        future.result().close()


def _rss_mb() -> float:
    try:
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
    except (OSError, ValueError, IndexError):
        return float('nan')


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until Ctrl-C or shutdown: ``ros2 run ros2_nano_llm nano_llm_node``."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    try:
        with initialized(args):  # rclpy.init() is a context manager only from Kilted
            try:
                node = ChatLifecycleNode()
            except ValueError as error:
                rclpy.logging.get_logger('nano_llm').fatal(f'bad parameters: {error}')
                return 1
            executor = MultiThreadedExecutor(num_threads=4)
            executor.add_node(node)
            try:
                executor.spin()
            finally:
                node.release()
                executor.shutdown(timeout_sec=WAIT_S)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == '__main__':
    main()

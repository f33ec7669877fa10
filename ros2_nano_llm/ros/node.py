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

Transitions (SPEC.md section 3): ``configure`` loads the model and builds the chat (on a
thread of its own; a failure returns FAILURE with the reason logged, and configure may be tried
again after fixing the parameters); ``activate`` creates the subscriptions and services and
lets prompts in; ``deactivate`` stops any reply and goes quiet (the chat is kept);
``cleanup`` frees the model; ``shutdown`` works from any state.

Bot functions: at ``configure`` the robot actions of ``functions_file`` (each one ROS
service, see ``ros_bridge``) and the ``builtin_functions`` become the functions the model
may call: the node's own list of records (no process-wide registry is written). Their docs
join the system prompt and every reply runs the calls it makes (each one is published on
``~/output/calls``; ``tool_choice`` says whether and what to call). ``~/call_function`` runs
one by name and ``~/list_functions`` lists them; ``~/stop`` interrupts a running one.

Threads: the executor's threads only run short callbacks and never wait for a robot
action. The chat's work (``worker.ChatWorker``: replies, reset, a new system prompt) runs on
the model's one worker thread, which also publishes each piece as it decodes; a
``~/generate`` goal (``generate_action``) is a prompt for the same worker, awaited by a
coroutine, and ``~/call_function`` is a coroutine that awaits a helper thread. Lifecycle
services, inputs and the other services have separate callback groups, so a long transition
never holds up a prompt, a ``~/stop`` or ``/diagnostics``.

Robustness: every callback catches, logs and reports at its edge (``_edge``), so no
message, request or parameter ends the process; sizes are bounded before work is done
(prompt length, call arguments, a frame's declared size); dropped prompts and frames are
counted on ``/diagnostics`` and logged at most once per ``DROP_LOG_PERIOD_S``.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
import enum
import functools
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.task import Future as RclFuture
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from . import diagnostics
from . import interfaces as ifc
from . import params
from . import persistence
from .compat import initialized
from .generate_action import GenerateAction
from .ros_bridge import RosServiceFunctions
from .signals import ShutdownSignals
from .worker import ChatSession, ChatWorker, LatestFrame, Prompt
from ..functions import execute, FunctionRegistry, parse_json_call
from ..msg import FunctionCall as FunctionCallMsg, StreamToken
from ..srv import CallFunction, GetHistory, ListFunctions
from ..vision.convert import shrink_to

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
WAIT_S = 10.0            # bound on waits for the worker inside callbacks
MAX_PROMPT_CHARS = 1 << 20    # a longer prompt is dropped before it is tokenized
MAX_CALL_NAME_CHARS = 256     # ~/call_function: longest function name taken
MAX_CALL_ARGS_CHARS = 1 << 16  # ... and longest args_json
MAX_CALLS_RUNNING = 16        # ~/call_function calls in progress at once; more are refused
KEEP_FRAME_FACTOR = 2  # frames are kept at most this many times the encoder's input side
FINALIZED_EXIT_S = 0.2  # after the shutdown transition: time to answer it, then exit
LEVELS = {'OK': ifc.DiagnosticStatus.OK, 'WARN': ifc.DiagnosticStatus.WARN,
          'ERROR': ifc.DiagnosticStatus.ERROR}


class Report(enum.Enum):
    """How a callback says that it failed: its kind, declared where it is decorated."""

    LOG = 'log'              # a subscription or a timer: the log line only
    MESSAGE = 'message'      # a service response with ``success`` and ``message``
    RESULT = 'result'        # a service response with ``success`` and ``result``
    PARAMETERS = 'parameters'  # a parameter callback: the change is refused


def _edge(what: str, report: Report = Report.LOG) -> Callable:
    """
    Decorate a callback so that no exception leaves it: catch, log and report.

    ``report`` says how: a service's response gets ``success=False`` and the reason, a
    parameter callback refuses the change, others return None.
    """
    def decorate(callback: Callable) -> Callable:
        @functools.wraps(callback)
        def guarded(self, *args):
            try:
                return callback(self, *args)
            except Exception as error:  # noqa: BLE001 - the callback's edge: report, go on
                reason = self._incidents.failed(what, error)
                if report is Report.PARAMETERS:
                    return SetParametersResult(successful=False, reason=reason)
                if report is not Report.LOG:  # (request, response)
                    return _failed_response(args[1], reason, report)
                return None
        return guarded
    return decorate


def _failed_response(response: Any, reason: str, report: Report = Report.MESSAGE) -> Any:
    response.success = False
    if report is Report.RESULT:
        response.result = f'error: {reason}'
    else:
        response.message = reason
    return response


class ChatLifecycleNode(LifecycleNode):
    """A managed node that owns one ``NanoLLM`` and one persistent ``ChatHistory``."""

    def __init__(self, node_name: str = 'nano_llm', **kwargs):
        self._config: params.NodeConfig = params.NodeConfig()
        self._worker: Optional[ChatWorker] = None
        self._session: Optional[ChatSession] = None
        self._functions: Optional[List[Any]] = None  # the enabled bot functions (records)
        self._bridge: Optional[RosServiceFunctions] = None
        self._chat_file: Optional[persistence.ChatFile] = None  # history_file, when set
        self._frames = LatestFrame()
        self._pub_tokens: Optional[LifecyclePublisher] = None
        self._pub_stream: Optional[LifecyclePublisher] = None
        self._pub_reply: Optional[LifecyclePublisher] = None
        self._pub_calls: Optional[LifecyclePublisher] = None
        self._generate: Optional[GenerateAction] = None  # ~/generate, activate to cleanup
        self._active_subscriptions: List[Any] = []  # they exist while active
        self._active_services: List[Any] = []
        self._stats: Dict[str, float] = {}
        self._stats_turn = 0
        self._last_error = ''
        self._vision_note_logged = False
        # turn ids keep increasing for the life of the process (clients key replies on them)
        # (and of a saved chat: never used twice, even across kill -9; see persistence)
        self._turn_ids = persistence.ReservedTurnIds()
        self._calls_running = threading.BoundedSemaphore(MAX_CALLS_RUNNING)
        # the node's one thread pool (concurrent.futures): the model load, ~/call_function
        # calls and the history_file writes; the chat itself runs on the model's worker
        self._pool = ThreadPoolExecutor(MAX_CALLS_RUNNING + 2, thread_name_prefix='nano_llm')
        self._frame_side = 0  # frames are shrunk to KEEP_FRAME_FACTOR x this (0: as they are)
        # done once the node is finalized (the shutdown transition): main() then exits
        self.finalized = RclFuture()
        self._exit_timer = None
        super().__init__(node_name, **kwargs)
        self._incidents = diagnostics.Incidents(self.get_logger())
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
        """Load the model and build the chat off the executor; FAILURE says why."""
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
        problem = params.tool_choice_problem(config.tool_choice, [f.name for f in functions or ()])
        if problem:
            self._unload_functions()
            return self._configure_failed(problem, "tool_choice 'auto'")
        chat_file = persistence.ChatFile(config.history_file, log, self._pool,
                                         config.kv_state_max_bytes) \
            if config.history_file else None
        # loaded off the executor; from then on the chat's work runs on the model's worker
        future = self._pool.submit(persistence.open_session, lambda: ChatSession.load(
            config, self._frames, functions, self._turn_ids), chat_file)
        try:
            session = future.result(timeout=config.load_timeout)
        except FutureTimeout:
            future.add_done_callback(_close_late_session)
            self._unload_functions()
            return self._configure_failed(
                f'the model did not load within load_timeout={config.load_timeout:g} s')
        except Exception as error:  # noqa: BLE001 - every load error means FAILURE + reason
            self._unload_functions()
            return self._configure_failed(f'{type(error).__name__}: {error}')
        worker = ChatWorker(session, self, lambda: self._config, log)
        self._worker, self._session, self._functions = worker, session, functions
        self._chat_file = chat_file
        # a restored chat goes on after its ids, each new one reserved in the file first
        self._turn_ids.attach(chat_file)
        self._pub_tokens = self.create_lifecycle_publisher(
            String, ifc.OUTPUT_TOKENS, ifc.STREAM_QOS)
        self._pub_stream = self.create_lifecycle_publisher(
            StreamToken, ifc.OUTPUT_STREAM, ifc.STREAM_QOS)
        self._pub_reply = self.create_lifecycle_publisher(
            String, ifc.OUTPUT_REPLY, ifc.REPLY_QOS)
        self._pub_calls = self.create_lifecycle_publisher(
            FunctionCallMsg, ifc.OUTPUT_CALLS, ifc.CALLS_QOS)
        self._last_error = ''
        self._vision_note_logged = False
        model = session.model
        self._frame_side = KEEP_FRAME_FACTOR * session.encoder_side()
        log.info(f"configured: '{model.name}' in {time.monotonic() - start:.1f} s, context "
                 f"{model.config.max_context_len} tokens, api '{model.api}', template "
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
        # take prompts before the subscription exists: a client that sees it may publish at
        # once, before this transition ends (the publishers are already active)
        self._worker.resume()
        self._active_subscriptions = [
            self.create_subscription(String, ifc.INPUT_TEXT, self._on_text, ifc.PROMPT_QOS,
                                     callback_group=self._input_group),
            self.create_subscription(Image, ifc.INPUT_IMAGE, self._on_image, ifc.IMAGE_QOS,
                                     callback_group=images),
            self.create_subscription(CompressedImage, ifc.INPUT_IMAGE_COMPRESSED,
                                     self._on_image, ifc.IMAGE_QOS, callback_group=images)]
        self._active_services = [
            self.create_service(Trigger, ifc.RESET, self._on_reset, callback_group=services),
            self.create_service(Trigger, ifc.STOP, self._on_stop, callback_group=services),
            self.create_service(GetHistory, ifc.GET_HISTORY, self._on_get_history,
                                callback_group=services),
            self.create_service(CallFunction, ifc.CALL_FUNCTION, self._on_call_function,
                                callback_group=services),
            self.create_service(ListFunctions, ifc.LIST_FUNCTIONS, self._on_list_functions,
                                callback_group=services),
        ]
        if self._generate is None:  # kept while inactive: a goal's result must reach its client
            self._generate = GenerateAction(
                self, self._worker, lambda: self._config,
                [f.name for f in self._functions or ()], self._frame_side, MAX_PROMPT_CHARS)
        topic = self.resolve_topic_name(ifc.INPUT_TEXT)
        self.get_logger().info(f'active: listening on {topic}')
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop any reply, drop waiting prompts and go quiet; the chat is kept."""
        self._quiet()
        if self._chat_file is not None:
            self._chat_file.save_state_soon()  # the KV state, on the pool
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
        self.get_logger().info('shut down: the process exits')
        # answer the transition first, then let main() end the process (exit code 0)
        self._exit_timer = self.create_timer(FINALIZED_EXIT_S, self._finish,
                                             callback_group=self._service_group)
        return SUCCESS

    def _finish(self) -> None:
        self.destroy_timer(self._exit_timer)
        if not self.finalized.done():
            self.finalized.set_result(True)

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
        for subscription in self._active_subscriptions:
            self.destroy_subscription(subscription)
        for service in self._active_services:
            self.destroy_service(service)
        self._active_subscriptions, self._active_services = [], []
        if self._generate is not None and not self._generate.wait_ended(WAIT_S):
            self.get_logger().warning(f'a ~/generate goal did not end within {WAIT_S:g} s')

    def _release(self) -> None:
        if self._generate is not None:
            self._generate.destroy(WAIT_S)
            self._generate = None
        if self._worker is not None:
            if not self._worker.close(WAIT_S):
                self.get_logger().warning("the chat's work did not end in time")
            self._worker = None
        for name in ('_pub_tokens', '_pub_stream', '_pub_reply', '_pub_calls'):
            publisher = getattr(self, name)
            if publisher is not None:
                setattr(self, name, None)
                self.destroy_lifecycle_publisher(publisher)
        if self._chat_file is not None:
            if not self._chat_file.close(WAIT_S):
                self.get_logger().warning('the chat was not written to history_file in time')
            self._chat_file = None
        if self._session is not None:
            self._session.close()
            self._session = None
        self._unload_functions()
        self._frames.clear()

    @_edge('autostart')
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
        (``ros_bridge``). The node keeps its own list of records: no registry is written.
        Runs in ``on_configure`` before the model loads; raises ValueError saying what to
        fix.
        """
        # the node's own registry: nothing module-level is written
        registry = FunctionRegistry()
        try:
            registry.load_builtins(config.builtin_functions)
        except ValueError as error:
            raise ValueError(f'builtin_functions: {error}') from None
        functions: List[Any] = list(registry)
        if config.functions_file:
            self._bridge = RosServiceFunctions.from_yaml(
                self, config.functions_file, callback_group=self._actions_group)
            clash = sorted(set(self._bridge.names) & {f.name for f in functions})
            if clash:
                raise ValueError(f"robot action(s) {', '.join(clash)} in "
                                 f"'{config.functions_file}' have the name of a built-in "
                                 'function; rename them')
            functions.extend(self._bridge.functions)
            services = ', '.join(f'{a.name} -> {a.service}'
                                 for a in self._bridge.actions.values())
            self.get_logger().info(f"robot actions from '{config.functions_file}': "
                                   f"{services or 'none (the file lists none)'}")
        return functions or None

    def _unload_functions(self) -> None:
        """Undo ``_load_functions``: interrupt waiting calls and destroy the clients."""
        bridge, self._bridge, self._functions = self._bridge, None, None
        if bridge is not None:
            bridge.destroy()

    async def _on_call_function(self, request: CallFunction.Request,
                                response: CallFunction.Response) -> CallFunction.Response:
        # a coroutine: the call runs on a helper thread and no executor thread waits for it
        if not self._calls_running.acquire(blocking=False):
            return _failed_response(response, f'{MAX_CALLS_RUNNING} calls are in progress '
                                    'already; call again when one has ended', Report.RESULT)
        try:
            response.result = await self._off_executor(
                lambda: self._call_function(request.name, request.args_json))
            response.success = not response.result.startswith('error:')
        except Exception as error:  # noqa: BLE001 - the callback's edge: report, go on
            _failed_response(response, self._incidents.failed('~/call_function', error),
                             Report.RESULT)
        finally:
            self._calls_running.release()
        args = request.args_json.strip() or '{}'
        line = (f'~/call_function {request.name[:80]}({args[:200]}'
                f"{'...' if len(args) > 200 else ''}) -> {response.result[:300]}")
        # (one call site per severity: rclpy refuses to change a call site's severity)
        if response.success:
            self.get_logger().info(line)
        else:
            self.get_logger().warning(line)
        return response

    def _call_function(self, name: str, args_json: str) -> str:
        """Run one call of ``~/call_function`` (a helper thread); return the result text."""
        functions = self._functions
        if not functions:
            return ('error: no bot functions are enabled on this node (set functions_file or '
                    'builtin_functions and configure again)')
        if len(name) > MAX_CALL_NAME_CHARS:
            return f'error: the function name is {len(name)} characters long; no name is'
        if len(args_json) > MAX_CALL_ARGS_CHARS:
            return (f'error: args_json is {len(args_json)} characters long; at most '
                    f'{MAX_CALL_ARGS_CHARS} are taken')
        try:
            call = parse_json_call(name, args_json)
        except (ValueError, RecursionError) as error:
            return f'error: malformed JSON arguments: {type(error).__name__}: {error}'[:400]
        return execute(call, functions)

    async def _off_executor(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` on the node's pool; await its result without holding an executor thread."""
        done = RclFuture(executor=self.executor)
        # a done callback makes the executor wake up (and resume the awaiting coroutine)
        done.add_done_callback(lambda _: None)
        self._pool.submit(work).add_done_callback(lambda ran: _settle(done, ran))
        return await done

    @_edge('~/list_functions')
    def _on_list_functions(self, request: ListFunctions.Request,
                           response: ListFunctions.Response) -> ListFunctions.Response:
        functions = self._functions or []
        response.names = [f.name for f in functions]
        response.descriptions = [f.doc_line() for f in functions]
        response.docs = FunctionRegistry(functions).generate_docs()
        return response

    # ---- inputs -----------------------------------------------------------------------
    @_edge('a prompt')
    def _on_text(self, msg: String) -> None:
        text = msg.data
        log = self.get_logger()
        if len(text) > MAX_PROMPT_CHARS:
            self._incidents.dropped('prompts', 'too long', f'prompt dropped: it has '
                                    f'{len(text)} characters, at most {MAX_PROMPT_CHARS} '
                                    'are taken')
            return
        if not text.strip():
            log.warning('empty prompt ignored: publish some text on '
                        f'{self.resolve_topic_name(ifc.INPUT_TEXT)}')
            return
        worker = self._worker
        if worker is None:
            taken, note = False, 'the node is not configured'
        else:
            taken, note = worker.submit(Prompt(text, time.monotonic()))
        preview = text if len(text) <= 80 else f'{text[:77]}... ({len(text)} chars)'
        if taken:
            log.info(f'prompt {preview!r}' + (f' ({note})' if note else ''))
        else:
            reason = note.split('(')[0].rstrip(' 0123456789')  # e.g. '... already wait'
            self._incidents.dropped('prompts', reason, f'prompt dropped ({note}): {preview!r}')

    @_edge('a camera frame')
    def _on_image(self, msg: Any) -> None:
        session, config = self._session, self._config
        if session is None or config.max_image_age <= 0.0:
            return
        if not session.model.has_vision:
            if not self._vision_note_logged:
                self._vision_note_logged = True
                self.get_logger().warning(
                    f"'{session.model.name}' has no vision: images are ignored and the chat "
                    'goes on in text (configure a vision model to use the camera)')
            return
        try:
            # the declared size is checked before any decoding
            image = ifc.frame_to_rgb(msg, max_size=config.max_image_size)
        except ValueError as error:
            text = f'{type(msg).__name__} frame dropped: {error}'
            self._incidents.dropped('frames', text[:120], text)
            return
        # keep no more pixels than the encoder can use (a 4K frame would be held in full)
        self._frames.put(shrink_to(image, self._frame_side), time.monotonic())

    # ---- services ---------------------------------------------------------------------
    @_edge('~/reset', Report.MESSAGE)
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        worker, session = self._worker, self._session
        if worker is None or session is None:
            return _failed_response(response, 'no model loaded')
        stopped, dropped = worker.stop()
        self._interrupt_actions()
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
        self._chat_changed()
        notes = ['chat cleared (system prompt kept)']
        if stopped:
            notes.append('the reply in progress was stopped')
        if dropped:
            notes.append(f'{dropped} waiting prompts dropped')
        response.success, response.message = True, '; '.join(notes)
        self.get_logger().info(response.message)
        return response

    @_edge('~/stop', Report.MESSAGE)
    def _on_stop(self, request: Trigger.Request, response: Trigger.Response
                 ) -> Trigger.Response:
        worker = self._worker
        if worker is None:
            return _failed_response(response, 'no model loaded')
        stopped, dropped = worker.stop()
        # a reply waiting for a robot action ends now; the model's text says it was stopped
        interrupted = self._interrupt_actions()
        idle = worker.wait_idle(WAIT_S)
        if stopped:
            message = f'stopped turn {worker.turn_id}; the partial reply is kept in the chat'
        else:
            message = 'no reply was in progress'
        if interrupted:
            message += f'; {interrupted} robot action call(s) interrupted'
        if dropped:
            message += f'; {dropped} waiting prompts dropped'
        if not idle:
            message += f'; the reply did not end within {WAIT_S:g} s'
        response.success, response.message = idle, message
        self.get_logger().info(message)
        return response

    def _interrupt_actions(self) -> int:
        bridge = self._bridge
        if bridge is None:
            return 0
        return bridge.interrupt('interrupted by ~/stop before the service answered; the '
                                'action may not have finished')

    @_edge('~/get_history', Report.MESSAGE)
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
    @_edge('parameter change', Report.PARAMETERS)
    def _on_set_parameters(self, changes: List[Any]) -> SetParametersResult:
        state = self.state
        config, reason = params.check_change(self._config, changes, state != 'unconfigured',
                                             state)
        if not reason and config is not None:
            reason = self._room_problem(config)
        if not reason and config is not None and config.tool_choice != self._config.tool_choice \
                and state != 'unconfigured':  # unconfigured: checked at configure
            reason = params.tool_choice_problem(config.tool_choice,
                                                [f.name for f in self._functions or ()])
        if reason:
            self.get_logger().warning(f'parameter change refused: {reason}')
        return SetParametersResult(successful=not reason, reason=reason)

    def _room_problem(self, new: params.NodeConfig) -> str:
        # settings that would make every prompt fail are refused here, with the reason
        session, old = self._session, self._config
        if session is None or session.history is None:
            return ''
        names = ('system_prompt', 'wrap_tokens', 'reply_prefix')
        if all(getattr(new, n) == getattr(old, n) for n in names):
            return ''
        return session.room_problem(new.system_prompt, new.wrap_tokens, new.reply_prefix)

    @_edge('applying parameters')
    def _after_set_parameters(self, changes: List[Any]) -> None:
        old, new = self._config, params.read(self)
        self._config = new
        names = params.changed(old, new)
        if not names:
            return
        self.get_logger().info('parameters changed: ' + ', '.join(
            f'{name}={_short(getattr(new, name))}' for name in names))
        worker, session = self._worker, self._session
        if worker is None or session is None:
            return
        if 'system_prompt' in names:
            worker.stop()
            worker.post(lambda: session.set_system_prompt(new.system_prompt),
                        'setting the system prompt')
            worker.post(self._chat_changed, 'saving the chat')
            self.get_logger().info('system prompt changed: the chat was reset')
        if 'wrap_tokens' in names or 'system_prompt' in names:
            worker.post(lambda: session.set_wrap_tokens(new.wrap_tokens), 'setting wrap_tokens')

    # ---- output (the worker's sink) ---------------------------------------------------
    def piece(self, turn_id: int, index: int, text: str) -> None:
        """Publish one new piece of reply text (the model's worker thread)."""
        stream, tokens = self._pub_stream, self._pub_tokens
        if stream is None or tokens is None:
            return  # cleaned up while the reply ended
        self._publish(lambda: (
            stream.publish(ifc.stream_token(self.get_clock().now().to_msg(), turn_id, index,
                                            text)),
            tokens.publish(String(data=text))))

    def finished(self, turn_id: int, pieces: int, text: str,
                 stats: Optional[Dict[str, float]]) -> None:
        """Publish the end of a turn: the eos piece, the whole reply and the diagnostics."""
        stream, reply = self._pub_stream, self._pub_reply
        if stream is None or reply is None:
            return
        # before the publish: a reply (or goal result) a client has seen is on disk
        self._chat_changed(turn_id)
        stamp = self.get_clock().now().to_msg()
        self._publish(lambda: (
            stream.publish(ifc.stream_token(stamp, turn_id, pieces, '', eos=True)),
            reply.publish(String(data=text))))
        if stats is not None:
            self._stats, self._stats_turn = stats, turn_id
        self.publish_diagnostics(generating=False)

    def function_called(self, turn_id: int, call: Any) -> None:
        """Publish one function call that really ran on ``~/output/calls`` (model's worker)."""
        calls = self._pub_calls
        if calls is None:
            return
        stamp = self.get_clock().now().to_msg()
        self._publish(lambda: calls.publish(ifc.function_call(stamp, turn_id, call)))

    def _publish(self, publish: Callable[[], Any]) -> None:
        try:
            publish()
        except Exception:  # noqa: BLE001 - see below
            if self.context.ok():
                raise
            # Ctrl-C or SIGTERM shut the context down while a reply streamed: main() stops
            # the worker next; stop the reply now, this is no error
            worker = self._worker
            if worker is not None:
                worker.stop()

    def _chat_changed(self, turn_id: Optional[int] = None) -> None:
        # save the chat to history_file (a snapshot here, the write on the pool) and wait
        # until it is on disk: what is published after this is in the file
        chat_file, session, worker = self._chat_file, self._session, self._worker
        if chat_file is not None and session is not None and worker is not None:
            chat_file.save(session.history, worker.turn_id if turn_id is None else turn_id,
                           WAIT_S)

    def publish_diagnostics(self, generating: Optional[bool] = None) -> None:
        """Publish the node's state and the last reply's figures on /diagnostics."""
        try:
            self._incidents.flush()
            self._publish_diagnostics(generating)
        except Exception as error:  # noqa: B902 - a timer callback must never kill the node
            # cleanup may free the model while this reads it: skip this report, not the node
            self.get_logger().debug(f'diagnostics skipped: {error}')

    def _publish_diagnostics(self, generating: Optional[bool]) -> None:
        session = self._session
        level, values, message = diagnostics.report(
            self.state, self._config, session, self._worker, self._functions, self._chat_file,
            self._incidents, self._stats, self._stats_turn, self._last_error, generating)
        self._pub_diagnostics.publish(ifc.diagnostics(
            self.get_clock().now().to_msg(), f'nano_llm: {self.get_fully_qualified_name()}',
            session.model.name if session else '', LEVELS[level],
            message, values))

    def release(self) -> None:
        """Stop the worker, free the model and end the node's pool (on exit, in any state)."""
        self._quiet()
        self._release()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f'{text[:limit - 20]}... ({len(text)} chars)'


def _settle(done: RclFuture, ran: Future) -> None:
    # hand a pool job's outcome to the coroutine that awaits it
    if ran.exception() is not None:
        done.set_exception(ran.exception())
    else:
        done.set_result(ran.result())


def _close_late_session(future: Any) -> None:
    # a load that finished after configure gave up on it: free the model at once
    if future.exception() is None:
        future.result().close()


def _quiet_progress_bars() -> None:
    # model loading draws tqdm bars ('Loading weights 0%|...'): noise in a node's log. The
    # process is the node's own, so main() may say so for the libraries it loads.
    os.environ.setdefault('HF_HUB_DISABLE_PROGRESS_BARS', '1')
    os.environ.setdefault('TQDM_DISABLE', '1')
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main(args: Optional[List[str]] = None) -> int:
    """
    Run the node until Ctrl-C, SIGTERM or the shutdown transition; return the exit code.

    ``ros2 run ros2_nano_llm nano_llm_node``. The worker is stopped before the node and the
    context go, so a reply that streams at that moment ends quietly; after the shutdown
    transition (finalized) the process exits with code 0. Only the first SIGINT or SIGTERM
    counts (``signals``): the ones that follow it, as under ``ros2 launch``, cannot cut the
    shutdown short.
    """
    _quiet_progress_bars()
    code = 0
    stopping = ShutdownSignals(rclpy.logging.get_logger('nano_llm').info)
    with stopping:  # before rclpy.init(): rclpy's handler runs first, then this one
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
                    executor.spin_until_future_complete(node.finalized)
                finally:
                    stopping.ending()
                    node.release()
                    executor.shutdown(timeout_sec=WAIT_S)
                    node.destroy_node()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
    stopping.exit_after(code)
    return code


if __name__ == '__main__':
    main()

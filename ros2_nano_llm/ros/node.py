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
The nano_llm lifecycle node: the ROS edge of one model and one persistent chat.

Each callback translates a message and hands it off; the chat's work runs on the model's
one worker thread (``worker.ChatWorker`` -> ``NanoLLM.submit()``, the only queue). The whole
data path, topic to backend and back, is in docs/architecture.md.

Transitions (SPEC.md section 3): ``configure`` loads the model and the bot functions
(``bot_functions``), builds the chat on the node's pool (a failure is FAILURE with the
reason logged; fix the parameter and configure again) and creates every interface;
``activate`` lets prompts, goals and ``~/call_function`` in; ``deactivate`` stops any reply
and refuses them again ("inactive: activate first"; a prompt is counted as dropped), while
``~/get_history`` and ``~/list_functions`` still answer; ``cleanup`` destroys the
interfaces and frees the model; ``shutdown`` works from any state.

Robustness: every callback catches, logs and reports at its edge (``edge``), so no message,
request or parameter ends the process; sizes are bounded before work is done; the request
queues are sized so that a burst gets every answer (``interfaces.request_qos``).
"""

from concurrent.futures import ThreadPoolExecutor
import threading
import time
from typing import Any, Dict, List, Optional

from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.task import Future as RclFuture
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from . import diagnostics
from . import interfaces as ifc
from . import params
from . import persistence
from .approval import OperatorApproval
from .bot_functions import MAX_CALLS_RUNNING, NodeFunctions
from .camera import Camera
from .edge import edge, failed, log_outcome, Report
from .generate_action import GenerateAction
from .memory import release_freed_memory
from .outputs import ReplyOutputs
from .run import quiet_progress_bars, run
from .worker import ChatWorker, INACTIVE, load_chat, LoadAbandoned, LoadTimeout, Prompt
from ..functions.guard import CallEvent, CallPolicy
from ..srv import CallFunction, GetHistory, ListFunctions

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
WAIT_S = 10.0            # bound on waits for the worker inside transitions and ~/reset
STOP_WAIT_S = 0.5        # ~/stop answers after this at most (a prefill ends at its next token)
MAX_PROMPT_CHARS = 1 << 20    # a longer prompt is dropped before it is tokenized
FINALIZED_EXIT_S = 0.2  # after the shutdown transition: time to answer it, then exit
LEVELS = {'OK': ifc.DiagnosticStatus.OK, 'WARN': ifc.DiagnosticStatus.WARN,
          'ERROR': ifc.DiagnosticStatus.ERROR}


class ChatLifecycleNode(LifecycleNode):
    """A managed node that owns one ``NanoLLM`` and one persistent ``ChatHistory``."""

    def __init__(self, node_name: str = 'nano_llm', **kwargs):
        self._config = params.NodeConfig()
        self._worker: Optional[ChatWorker] = None  # configure to cleanup, as what follows
        self._chat_file: Optional[persistence.ChatFile] = None  # history_file, when set
        self._outputs: Optional[ReplyOutputs] = None
        self._generate: Optional[GenerateAction] = None
        self._endpoints: List[Any] = []  # (how to destroy it, a subscription or service)
        self._stats: Dict[str, float] = {}
        self._stats_turn = 0
        self._last_error = ''
        self._ending = threading.Event()  # release() has begun: the process is ending
        # turn ids keep increasing for the life of the process (clients key replies on them)
        # and of a saved chat: never used twice, even across kill -9 (see persistence)
        self._turn_ids = persistence.ReservedTurnIds()
        # the node's one thread pool: the model load, ~/call_function calls, the chat file
        # (each ~/call_function holds two threads: the request's and its call's; up to
        # MAX_CALLS_RUNNING more calls may run on past their timeout; 4 for the chat's jobs)
        self._pool = ThreadPoolExecutor(3 * MAX_CALLS_RUNNING + 4, thread_name_prefix='nano_llm')
        self.finalized = RclFuture()  # done after the shutdown transition: main() exits
        self._exit_timer = None
        super().__init__(node_name, **kwargs)
        self.incidents = diagnostics.Incidents(self.get_logger())
        self._camera = Camera(self.get_logger(), self.incidents)
        # the lifecycle and parameter services share the default (mutually exclusive) group:
        # a transition and a parameter change never run at the same time
        self._service_group = ReentrantCallbackGroup()  # the node's timers
        self._config = params.declare(self)
        # every bot function call passes the operator's approval where it needs one, and
        # reports its events on ~/output/calls as they happen (functions/guard.py)
        self._approval = OperatorApproval(self, lambda: self._config)
        self._functions = NodeFunctions(self, self._pool, CallPolicy(
            self._report_call, self._approval, lambda: self._turn_ids.last), self._approval)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        self._pub_diagnostics = self.create_publisher(
            ifc.DiagnosticArray, ifc.DIAGNOSTICS, ifc.DIAGNOSTICS_QOS)
        if self._config.diagnostics_period > 0.0:
            self.create_timer(self._config.diagnostics_period, self.publish_diagnostics,
                              callback_group=self._service_group)
        self._autostart_timer = None
        if self._config.autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    @property
    def state(self) -> str:
        """Return the lifecycle state's label ('unconfigured', 'inactive', 'active', ...)."""
        return self._state_machine.current_state[1]

    # ---- lifecycle --------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the functions, the model and the chat; create the interfaces."""
        config, log, start = self._config, self.get_logger(), time.monotonic()
        log.info(f"configuring: loading model '{config.model}' (api '{config.api}')")
        try:
            functions = self._functions.load(config)
        except (ValueError, RuntimeError) as error:
            return self._configure_failed(f'bot functions: {error}', 'functions_file <path> '
                                          "or builtin_functions \"['DATE', 'TIME']\"")
        problem = params.tool_choice_problem(config.tool_choice, self._functions.names)
        if problem:
            return self._configure_failed(problem, "tool_choice 'auto'")
        chat_file = persistence.ChatFile(config.history_file, log, self._pool,
                                         config.kv_state_max_bytes) \
            if config.history_file else None
        try:
            session = load_chat(config, self._pool, self._camera.frames, functions,
                                self._turn_ids, chat_file, abandon=self._ending)
        except LoadAbandoned as reason:  # Ctrl-C or SIGTERM: not a failure to report
            self._functions.unload()
            log.info(f'configure abandoned: {reason}')
            return FAILURE
        except LoadTimeout as error:
            return self._configure_failed(str(error))
        except Exception as error:  # noqa: BLE001 - every load error means FAILURE + reason
            return self._configure_failed(f'{type(error).__name__}: {error}')
        # a restored chat goes on after its ids, each new one reserved in the file first
        self._turn_ids.attach(chat_file)
        self._chat_file, self._last_error = chat_file, ''
        self._worker = ChatWorker(session, None, lambda: self._config, log)
        self._camera.configure(session.encoder_side())
        self._open_interfaces()
        model = session.model
        log.info(f"configured: '{model.name}' in {time.monotonic() - start:.1f} s, context "
                 f'{model.config.max_context_len} tokens, api {model.api!r}, template '
                 f'{session.history.template.name!r}, vision '
                 f"{'yes' if model.has_vision else 'no'}, functions "
                 f"{', '.join(self._functions.names) or 'none'}")
        return SUCCESS

    def _open_interfaces(self) -> None:
        # every interface lives from configure to cleanup; each says why when inactive
        self._outputs = ReplyOutputs(self, self._turn_ended, self._worker.stop)
        self._worker.sink = self._outputs
        requests = ifc.request_qos(self._config.max_queue)
        subscribe, service = self.create_subscription, self.create_service
        # fresh groups each configure: an rclpy group keeps a weak reference to every entity
        # ever added to it, so a group of the node's life grew at each cycle (issue 21)
        inputs, images, services = (MutuallyExclusiveCallbackGroup(),  # a JPEG delays no
                                    MutuallyExclusiveCallbackGroup(),  # prompt
                                    ReentrantCallbackGroup())
        self._endpoints = [(self.destroy_subscription, s) for s in [
            subscribe(String, ifc.INPUT_TEXT, self._on_text, ifc.PROMPT_QOS,
                      callback_group=inputs),
            *(subscribe(kind, topic, lambda raw, kind=kind: self._on_image(raw, kind),
                        ifc.IMAGE_QOS, callback_group=images, raw=True)
              for kind, topic in ((Image, ifc.INPUT_IMAGE),
                                  (CompressedImage, ifc.INPUT_IMAGE_COMPRESSED)))]]
        self._endpoints += [(self.destroy_service, s) for s in [
            service(Trigger, ifc.RESET, self._on_reset, qos_profile=requests,
                    callback_group=services),
            service(Trigger, ifc.STOP, self._on_stop, qos_profile=requests,
                    callback_group=services),
            service(GetHistory, ifc.GET_HISTORY, self._on_get_history, qos_profile=requests,
                    callback_group=services),
            service(CallFunction, ifc.CALL_FUNCTION, self._on_call_function,
                    qos_profile=requests, callback_group=services),
            service(ListFunctions, ifc.LIST_FUNCTIONS, self._on_list_functions,
                    qos_profile=requests, callback_group=services)]]
        self._generate = GenerateAction(self, self._worker, lambda: self._config,
                                        self._functions.names, self._camera.side,
                                        MAX_PROMPT_CHARS, requests, self._functions.interrupt)

    def _configure_failed(self, reason: str, fix: str = 'model <path>'
                          ) -> TransitionCallbackReturn:
        self._functions.unload()
        self._last_error = f"configure failed: {reason.rstrip('. ')}"  # '. Fix' follows
        self.get_logger().error(
            f'{self._last_error}. Fix the parameter (ros2 param set '
            f'{self.get_fully_qualified_name()} {fix}) and configure again')
        return FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Let prompts, goals and calls in (the publishers are active first)."""
        result = super().on_activate(state)
        if result == SUCCESS:
            self._worker.resume()
            topic = self.resolve_topic_name(ifc.INPUT_TEXT)
            self.get_logger().info(f'active: listening on {topic}')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop any reply, drop waiting prompts and refuse new work; the chat is kept."""
        self._quiet()
        if self._chat_file is not None:
            self._chat_file.save_state_soon()  # the KV state, on the pool
        self.get_logger().info('inactive: replies stopped, chat kept')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the interfaces; free the model and the chat."""
        self._release()
        self.get_logger().info('cleaned up: model freed')
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop and free everything, from whichever state the node is in."""
        self._quiet()
        self._release()
        self.get_logger().info('shut down: the process exits')
        # answer the transition first, then let main() end the process (exit code 0)
        self._exit_timer = self.create_timer(FINALIZED_EXIT_S, self._finalize,
                                             callback_group=self._service_group)
        return SUCCESS

    def _finalize(self) -> None:
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
            # a robot call of the reply ends now (stop message sent, goal cancelled)
            self._functions.interrupt('interrupted: the node is deactivating or shutting down',
                                      'the node was deactivated')
            if not self._worker.wait_idle(WAIT_S):
                self.get_logger().warning(f'the reply did not stop within {WAIT_S:g} s')
        if self._generate is not None and not self._generate.wait_ended(WAIT_S):
            self.get_logger().warning(f'a ~/generate goal did not end within {WAIT_S:g} s')

    def _release(self) -> None:
        if self._generate is not None:
            self._generate.destroy(WAIT_S)
        for destroy, endpoint in self._endpoints:
            destroy(endpoint)
        worker, self._worker, self._generate, self._endpoints = self._worker, None, None, []
        if worker is not None and not worker.close(WAIT_S):
            self.get_logger().warning("the chat's work did not end in time")
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        if self._chat_file is not None and not self._chat_file.close(WAIT_S):
            self.get_logger().warning('the chat was not written to history_file in time')
        self._chat_file = None
        if worker is not None:
            worker.session.close()
        self._functions.unload()
        self._camera.frames.clear()
        release_freed_memory()

    @edge('autostart')
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        self.get_logger().info('autostart: configure and activate')
        # (a Ctrl-C during the configure: the node is ending, it does not go active)
        if self.trigger_configure() == SUCCESS and not self._ending.is_set():
            self.trigger_activate()

    # ---- inputs -----------------------------------------------------------------------
    @edge('a prompt')
    def _on_text(self, msg: String) -> None:
        text, worker = msg.data, self._worker
        if len(text) > MAX_PROMPT_CHARS:
            return self.incidents.dropped('prompts', 'too long', f'prompt dropped: it has '
                                          f'{len(text)} characters, at most {MAX_PROMPT_CHARS} '
                                          'are taken')
        if not text.strip():
            return self.get_logger().warning('empty prompt ignored: publish some text on '
                                             f'{self.resolve_topic_name(ifc.INPUT_TEXT)}')
        taken, note = worker.submit(Prompt(text, time.monotonic())) if worker else \
            (False, 'the node is not configured')
        preview = text if len(text) <= 80 else f'{text[:77]}... ({len(text)} chars)'
        if taken:
            self.get_logger().info(f'prompt {preview!r}' + (f' ({note})' if note else ''))
            if note.startswith('interrupted'):  # busy_policy interrupt: its robot call ends
                self._functions.interrupt('interrupted by a new prompt')
        else:  # counted on /diagnostics; one log line per reason and period
            reason = note.split('(')[0].rstrip(' 0123456789')  # e.g. '... already wait'
            self.incidents.dropped('prompts', reason, f'prompt dropped ({note}): {preview!r}')

    @edge('a camera frame')
    def _on_image(self, raw: bytes, kind: Any) -> None:
        # serialized: the declared size is checked before the frame is copied (camera.py)
        worker, config = self._worker, self._config
        if worker is not None and self.state == 'active' and config.max_image_age > 0.0:
            self._camera.take(raw, kind, worker.session.model, config)

    # ---- services ---------------------------------------------------------------------
    @edge('~/reset', Report.MESSAGE)
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        worker = self._worker
        if worker is None:  # cleaned up meanwhile
            return failed(response, 'no model loaded')
        stopped, dropped = worker.stop()
        self._functions.interrupt()
        try:
            worker.call(worker.session.reset, timeout=WAIT_S)
        except TimeoutError:
            return self._answer(response, False, f'the reply did not end within {WAIT_S:g} s; '
                                'the chat will be cleared as soon as it does')
        self._chat_changed()
        return self._answer(response, True, '; '.join(
            ['chat cleared (system prompt kept)'] +
            ['the reply in progress was stopped'] * stopped +
            [f'{dropped} waiting prompts dropped'] * bool(dropped)))

    @edge('~/stop', Report.MESSAGE)
    def _on_stop(self, request: Trigger.Request, response: Trigger.Response
                 ) -> Trigger.Response:
        # answered at once: a reply in prefill ends at its next token, and its turn stays
        # whole (~/get_history shows a turn once it has ended)
        worker = self._worker
        if worker is None:  # cleaned up meanwhile
            return failed(response, 'no model loaded')
        stopped, dropped = worker.stop()
        interrupted = self._functions.interrupt()  # a reply waiting for a robot action
        ended = worker.wait_idle(STOP_WAIT_S)
        message = '; '.join(
            [f'stopped turn {worker.turn_id}; the partial reply is kept in the chat' if stopped
             else 'no reply was in progress'] +
            [f'{interrupted} robot action call(s) interrupted'] * bool(interrupted) +
            [f'{dropped} waiting prompts dropped'] * bool(dropped) +
            ['the reply ends at its next token'] * (not ended))
        return self._answer(response, True, message)

    def _answer(self, response: Any, success: bool, message: str) -> Any:
        response.success, response.message = success, message
        log_outcome(self.get_logger(), success, message)
        return response

    @edge('~/get_history', Report.MESSAGE)
    def _on_get_history(self, request: GetHistory.Request, response: GetHistory.Response
                        ) -> GetHistory.Response:
        worker = self._worker
        if worker is None:  # cleaned up meanwhile
            return failed(response, 'no model loaded')
        history = worker.session.history
        with history.lock:  # a turn in progress shows its prompt last; its reply joins at end
            response.entries, open_turn = ifc.chat_entries(history), worker.open_turn_entries()
            response.cache_tokens = len(history.kv_cache)
        response.context_len = int(worker.session.model.config.max_context_len)
        count = len(response.entries)
        response.success, response.message = True, f"{count} entr{'y' if count == 1 else 'ies'}" \
            + (f'; turn {worker.turn_id} in progress (its prompt is last)' if open_turn else '')
        return response

    async def _on_call_function(self, request: CallFunction.Request,
                                response: CallFunction.Response) -> CallFunction.Response:
        if self.state != 'active':
            return failed(response, INACTIVE, Report.RESULT)
        return await self._functions.serve_call(request, response, self.incidents)

    @edge('~/list_functions')
    def _on_list_functions(self, request: ListFunctions.Request,
                           response: ListFunctions.Response) -> ListFunctions.Response:
        return self._functions.list_into(response)

    # ---- parameters -------------------------------------------------------------------
    @edge('parameter change', Report.PARAMETERS)
    def _on_set_parameters(self, changes: List[Any]) -> SetParametersResult:
        worker = self._worker
        reason = params.change_refusal(self._config, changes, self.state,
                                       worker.session if worker else None,
                                       self._functions.names)
        if reason:
            self.get_logger().warning(f'parameter change refused: {reason}')
        return SetParametersResult(successful=not reason, reason=reason)

    @edge('applying parameters')
    def _after_set_parameters(self, changes: List[Any]) -> None:
        old, self._config = self._config, params.read(self)
        names = params.changed(old, self._config)
        if names:
            self.get_logger().info(f'parameters changed: {params.describe(self._config, names)}')
        if names and self._worker is not None:
            if 'system_prompt' in names:  # the reply stops and the chat resets: its calls end
                self._functions.interrupt('interrupted: the system prompt changed')
            self._worker.apply(names, self._config, self._chat_changed)

    # ---- output -----------------------------------------------------------------------
    def _turn_ended(self, turn_id: int, stats: Optional[Dict[str, float]]) -> None:
        # before the reply is published (ReplyOutputs): save the chat, so that a reply (or
        # goal result) a client has seen is on disk; then report the figures
        self._chat_changed(turn_id)
        if stats is not None:
            self._stats, self._stats_turn = stats, turn_id
        self.publish_diagnostics(generating=False)

    def _report_call(self, event: CallEvent) -> None:
        # one event of a bot function call, as it happens (any thread): published, logged
        outputs = self._outputs
        if outputs is not None:
            outputs.call_event(event)
        log_outcome(self.get_logger(), event.event != 'refused', event.line())

    def _chat_changed(self, turn_id: Optional[int] = None) -> None:
        # save the chat to history_file (a snapshot here, the write on the node's pool) and
        # wait until it is on disk: what is published after this is in the file
        chat_file, worker = self._chat_file, self._worker
        if chat_file is not None and worker is not None:
            chat_file.save(worker.session.history, worker.turn_id if turn_id is None else turn_id,
                           WAIT_S)

    def publish_diagnostics(self, generating: Optional[bool] = None) -> None:
        """Publish the node's state and the last reply's figures on /diagnostics."""
        try:
            self.incidents.flush()
            worker = self._worker
            session = worker.session if worker else None
            level, values, message = diagnostics.report(
                self.state, self._config, session, worker, self._functions.records,
                self._chat_file, self.incidents, self._stats, self._stats_turn,
                self._last_error, generating)
            self._pub_diagnostics.publish(ifc.diagnostics(
                self.get_clock().now().to_msg(), f'nano_llm: {self.get_fully_qualified_name()}',
                session.model.name if session else '', LEVELS[level], message, values))
        except Exception as error:  # noqa: B902 - a timer callback must never kill the node
            # cleanup may free the model while this reads it: skip this report, not the node
            self.get_logger().debug(f'diagnostics skipped: {error}')

    def release(self) -> None:
        """Stop the worker, free the model and end the node's pool (on exit, in any state)."""
        self._ending.set()  # a configure still loading gives the load up
        self._quiet()
        self._release()
        self._pool.shutdown(wait=False, cancel_futures=True)


def main(args: Optional[List[str]] = None) -> int:
    """Run the node (``ros2 run ros2_nano_llm nano_llm_node``) until its end; exit code 0."""
    quiet_progress_bars()
    return run(ChatLifecycleNode, args)


if __name__ == '__main__':
    main()

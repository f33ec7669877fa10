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
The package's action and messages work over real DDS between two processes, on every leg.

A child process serves ``ros2_nano_llm/action/Generate`` with rclpy's ActionServer (feedback
per word, a result carrying FunctionCall records) and publishes a FunctionCall; this process is
the client. No model and no torch: it checks the generated interfaces (action_msgs included) on
the ROS distribution the session runs (Kilted, and Jazzy on its CI leg), not the node.
"""

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

SERVER = textwrap.dedent("""
    import json, sys, time
    import rclpy
    from rclpy.action import ActionServer
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from ros2_nano_llm.action import Generate
    from ros2_nano_llm.msg import FunctionCall

    def execute(handle):
        # Publish only once both feedback subscribers (the client's and the test's) match.
        deadline = time.monotonic() + 10.0
        while (node.count_subscribers('generate/_action/feedback') < 2
               and time.monotonic() < deadline):
            time.sleep(0.02)
        words = handle.request.prompt.split()
        for index, word in enumerate(words):
            handle.publish_feedback(Generate.Feedback(text=word + ' ', token_index=index))
        call = FunctionCall(name='echo', args_json=json.dumps({'n': len(words)}),
                            result='ok', success=True, turn_id=7)
        calls.publish(call)
        handle.succeed()
        return Generate.Result(reply=' '.join(words) + ' ', stop_reason='eos', calls=[call],
                               time_to_first_token=0.5, decode_rate=float(len(words)))

    rclpy.init()
    node = rclpy.create_node('generate_server')
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    calls = node.create_publisher(FunctionCall, 'calls', latched)
    server = ActionServer(node, Generate, 'generate', execute,
                          callback_group=ReentrantCallbackGroup())
    print('ready', flush=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
""")


@pytest.fixture
def server(ros_env):
    """Start the action server process; stop it after the test."""
    process = subprocess.Popen([sys.executable, '-P', '-c', SERVER], env=ros_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout.readline().strip() == 'ready', process.stdout.read()
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_generate_action_and_function_call_over_dds(server, rclpy_context):
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from ros2_nano_llm.action import Generate
    from ros2_nano_llm.msg import FunctionCall

    node = rclpy.create_node('generate_client', context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        published = []
        # Latched both ways: the call reaches us however late discovery completes.
        latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(FunctionCall, 'calls', published.append, latched)
        raw_feedback = []
        node.create_subscription(Generate.Impl.FeedbackMessage, 'generate/_action/feedback',
                                 raw_feedback.append, 10)
        client = ActionClient(node, Generate, 'generate')
        assert client.wait_for_server(timeout_sec=30.0)
        feedback = []
        done = threading.Event()
        goal = Generate.Goal(prompt='move to the door', tool_choice='auto', max_new_tokens=8)
        future = client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(
            (m.feedback.token_index, m.feedback.text)))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(30.0) and future.result().accepted
        done.clear()
        result_future = future.result().get_result_async()
        result_future.add_done_callback(lambda _: done.set())
        assert done.wait(30.0)
        result = result_future.result().result
        assert result.reply == 'move to the door '
        assert result.stop_reason == 'eos' and result.decode_rate == 4.0
        assert [(c.name, c.args_json, c.result, c.success, c.turn_id) for c in result.calls] \
            == [('echo', '{"n": 4}', 'ok', True, 7)]
        # Feedback (a topic) and the result (a service) are not ordered: rclpy's ActionClient
        # drops feedback that it takes after the result, so count it on the topic itself.
        deadline = time.monotonic() + 10.0
        while (len(raw_feedback) < 4 or not published) and time.monotonic() < deadline:
            time.sleep(0.05)
        pieces = sorted((m.feedback.token_index, m.feedback.text) for m in raw_feedback)
        assert pieces == [(0, 'move '), (1, 'to '), (2, 'the '), (3, 'door ')]
        assert ''.join(text for _, text in pieces) == result.reply
        assert set(feedback) <= set(pieces)
        assert [c.name for c in published] == ['echo']
    finally:
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()

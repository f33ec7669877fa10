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
"""The busy policy, applied once at submission: what a prompt gets while the chat is busy."""

from ros2_nano_llm.ros.worker import BusyPolicy
from ros2_nano_llm.settings import Settings


def test_an_idle_chat_takes_every_prompt():
    for name in ('queue', 'drop', 'interrupt'):
        assert BusyPolicy(name, 1).refusal(busy=False, waiting=0) == ''


def test_queue_holds_max_queue_prompts_then_refuses():
    policy = BusyPolicy('queue', 2)
    assert policy.refusal(busy=True, waiting=1) == '' and not policy.interrupts
    assert 'max_queue' in policy.refusal(busy=True, waiting=2)


def test_drop_refuses_while_busy_and_interrupt_never_does():
    assert "busy_policy is 'drop'" in BusyPolicy('drop', 4).refusal(busy=True, waiting=0)
    interrupt = BusyPolicy('interrupt', 1)
    assert interrupt.interrupts and interrupt.refusal(busy=True, waiting=5) == ''


def test_the_policy_is_the_parameters():
    config = Settings().updated({'busy_policy': 'drop', 'max_queue': 7})
    assert BusyPolicy.of(config) == BusyPolicy('drop', 7)

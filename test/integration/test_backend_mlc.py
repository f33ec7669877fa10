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
api='mlc': MLC-LLM's MLCEngine in-process where ``mlc_llm`` imports, a clear error elsewhere.

The engine tests need ``mlc_llm`` (Jetson images ship it; it is not on the package registries
here) and a model: ``ROS2_NANO_LLM_MLC_MODEL`` names an MLC model directory, a Hugging Face
model directory (converted at ``ROS2_NANO_LLM_MLC_QUANTIZATION``, default ``q4f16_ft``) or a
hub id such as ``mlc-ai/SmolLM2-135M-Instruct-q4f16_1-MLC``.
"""

import importlib.util
import os

from chat_helpers import reply, stream_twice
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.models.loading import ModelSource
from ros2_nano_llm.models.mlc import INSTALL_HINT, mlc_model_path

HAVE_MLC = importlib.util.find_spec('mlc_llm') is not None
MLC_MODEL = os.environ.get('ROS2_NANO_LLM_MLC_MODEL')
if not HAVE_MLC:
    SKIP = 'mlc_llm is not installed: ' + INSTALL_HINT
elif not MLC_MODEL:
    SKIP = 'set ROS2_NANO_LLM_MLC_MODEL to a model to run MLCEngine'
else:
    SKIP = None
needs_mlc = pytest.mark.skipif(SKIP is not None, reason=SKIP or '')


@pytest.mark.skipif(HAVE_MLC, reason='mlc_llm is installed: the import error cannot occur')
def test_missing_mlc_llm_names_what_to_install():
    with pytest.raises(RuntimeError) as error:
        NanoLLM.from_pretrained('default', api='mlc', quantization='q4f16_ft')
    message = str(error.value)
    assert 'mlc_llm' in message and 'jetson-containers' in message and 'pip install' in message


def test_gguf_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="api='llama_cpp'"):
        mlc_model_path(ModelSource('gguf', '/models/x.gguf', 'x'), 'q4f16_ft', 'chatml')


def test_prebuilt_mlc_hub_model_goes_to_mlc_as_is():
    source = ModelSource('hub', 'mlc-ai/SmolLM2-135M-Instruct-q4f16_1-MLC', 'SmolLM2')
    assert mlc_model_path(source, 'q4f16_1', 'chatml') == \
        'HF://mlc-ai/SmolLM2-135M-Instruct-q4f16_1-MLC'


@pytest.fixture(scope='module')
def mlc():
    """Yield the model named by ROS2_NANO_LLM_MLC_MODEL on MLCEngine."""
    quantization = os.environ.get('ROS2_NANO_LLM_MLC_QUANTIZATION', 'q4f16_ft')
    model = NanoLLM.from_pretrained(MLC_MODEL, api='mlc', quantization=quantization,
                                    max_context_len=2048)
    yield model
    model.backend.close()
    model.close()


@needs_mlc
def test_chat_turns_and_edits_send_the_rendered_chat(mlc):
    history = ChatHistory(mlc)
    for prompt in ['Hi there, who are you?', 'Tell me about robots.', 'What is 2 + 2?']:
        history.append('user', prompt)
        rendered = mlc.detokenize(history.render().tokens)
        assert reply(mlc, history, max_new_tokens=12)
        assert mlc.backend.last_prompt == rendered
    history.remove(3, 5)
    history.append('user', 'Name a colour.')
    rendered = mlc.detokenize(history.render().tokens)
    assert reply(mlc, history, max_new_tokens=12)
    assert mlc.backend.last_prompt == rendered


@needs_mlc
def test_streaming_equals_non_streaming(mlc):
    pieces, stream, text = stream_twice(mlc)
    assert ''.join(pieces) == stream.text == text
    assert mlc.stats['output_tokens'] == len(stream.tokens) > 0

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
"""Models shared by the integration tests: tiny random-weight ones and the embedded SmolLM2."""

import pytest

from ros2_nano_llm import NanoLLM


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    """Return a builder that saves a tiny model of an architecture and returns its path."""
    built = {}

    def build(arch='llama'):
        pytest.importorskip('torch', reason='tiny random models need torch (the hf extra)')
        from support.tiny import build_tiny_model
        if arch not in built:
            built[arch] = build_tiny_model(str(tmp_path_factory.mktemp(f'{arch}-random')), arch)
        return built[arch]
    return build


@pytest.fixture(scope='session')
def smollm2():
    """Return the embedded SmolLM2-135M-Instruct, loaded once per session."""
    pytest.importorskip('transformers', reason='the hf backend needs transformers')
    model = NanoLLM.from_pretrained('default', api='hf')
    yield model
    model.close()


@pytest.fixture(scope='session')
def tiny_llama(tiny_model_dir):
    """Return a tiny random-weight Llama loaded through NanoLLM."""
    model = NanoLLM.from_pretrained(tiny_model_dir('llama'))
    yield model
    model.close()


@pytest.fixture(scope='module')
def smollm2_llama_cpp():
    """Yield the embedded SmolLM2 GGUF on llama.cpp (2 threads, 2,048 tokens), per module."""
    pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed '
                        "(pip install 'llama-cpp-python==0.3.36')")
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=2048)
    yield model
    model.close()


@pytest.fixture(params=['hf', 'llama_cpp'])
def random_picks(request, tiny_llama):
    """Yield ``(model, sampling)`` per logits backend, sampling that makes tokens random picks."""
    if request.param == 'hf':
        return tiny_llama, {'do_sample': True, 'temperature': 1.0, 'top_p': 1.0}
    return request.getfixturevalue('smollm2_llama_cpp'), {'do_sample': True,
                                                          'temperature': 4.0, 'top_p': 1.0}

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
api='openai' against llama-cpp-python's own OpenAI-compatible server on loopback.

The test starts ``python -m llama_cpp.server`` with the embedded GGUF on a free port, waits
for it (bounded) and always stops it. The server samples and keeps its own cache, so "exact"
here means: every request carries exactly the chat ChatHistory renders (after pops, removals,
resets and wraps), and the server's greedy reply is the one llama.cpp gives in-process.
"""

import time

from chat_helpers import PROMPTS, recompute, reply, stop_after, stream_twice
import pytest
from ros2_nano_llm import bot_function, BotFunctions, ChatHistory, NanoLLM
from ros2_nano_llm.models.loading import default_model_path
from support.llama_server import free_port, serve

SERVER = 'pip install llama-cpp-python[server]==0.3.36'
pytest.importorskip('llama_cpp', reason=f'llama-cpp-python is not installed ({SERVER})')
pytest.importorskip('sse_starlette', reason=f'the llama_cpp server is not installed ({SERVER})')

VOLUME = []


@bot_function
def SET_VOLUME(level: float) -> str:
    """Set the speaker volume (0 to 1)."""
    VOLUME.append(level)
    return f'volume is {level}'


@pytest.fixture(scope='module')
def server():
    """Yield the URL of a llama-cpp-python server with the embedded GGUF (then stop it)."""
    with serve(default_model_path(), n_threads=2, n_ctx=2048) as base:
        yield base


@pytest.fixture(scope='module')
def remote(server):
    """Yield a model on the server (its chat template comes from the name, as locally)."""
    model = NanoLLM.from_pretrained('default', api='openai', base_url=server + '/v1',
                                    max_context_len=2048)
    yield model
    model.close()


def sent(model):
    """Return the prompt text of the latest request."""
    return model.backend.last_prompt


def test_turns_send_the_rendered_chat(remote):
    history = ChatHistory(remote)
    assert history.template.name == 'chat-ml'
    for prompt in PROMPTS[:3]:
        history.append('user', prompt)
        rendered = remote.detokenize(history.render().tokens)
        new, position = history.embed_chat()
        assert position > 0 or len(history) == 2  # only the new turn is new
        got = reply(remote, history)
        assert sent(remote) == rendered and got
        assert history[-1].tokens == got and remote.detokenize(got) == history[-1].content
    recompute(remote, history)  # the whole chat from an empty cache sends the same text
    assert sent(remote) == remote.detokenize(history.render().tokens)


@pytest.mark.parametrize('edit', ['pop', 'remove_middle', 'reset', 'wrap'])
def test_edits_send_exactly_the_edited_chat(remote, edit):
    history = ChatHistory(remote)
    for prompt in PROMPTS[:3]:
        history.append('user', prompt)
        reply(remote, history, max_new_tokens=8)
    if edit == 'pop':
        history.pop(2)
    elif edit == 'remove_middle':
        history.remove(3, 5)
    elif edit == 'reset':
        history.reset()
        assert len(history.kv_cache) == history[0].num_tokens
    elif edit == 'wrap':
        total = history.num_tokens
        history.append('user', PROMPTS[3])
        history.embed_chat(max_tokens=total - 5, wrap_tokens=total // 2)
        assert history[1].role == 'user' and history.num_tokens <= total - 5
        history.pop()
    history.append('user', PROMPTS[5])
    rendered = remote.detokenize(history.render().tokens)
    assert reply(remote, history, max_new_tokens=8)
    assert sent(remote) == rendered


def test_reply_equals_llama_cpp_in_process(remote):
    """The server's greedy reply is the one llama.cpp gives in this process (same GGUF)."""
    local = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2, n_ctx=2048)
    texts = []
    for model in (remote, local):
        history = ChatHistory(model)
        history.append('user', 'Tell me about robots and the sea.')
        texts.append(model.detokenize(reply(model, history, max_new_tokens=16)))
    local.close()
    assert texts[0] == texts[1] and texts[0]


def test_streaming_equals_non_streaming(remote):
    # the server re-runs the last token of a prompt it holds whole on its own, which llama.cpp
    # computes slightly differently from a batch: send another prompt in between
    pieces, stream, text = stream_twice(remote, between=lambda: remote.generate(
        'Something else.', max_new_tokens=1, streaming=False))
    assert ''.join(pieces) == stream.text == text
    assert len(stream.tokens) == 20 and stream.stop_reason == 'length'
    stats = remote.stats
    assert stats['output_tokens'] == 20 and stats['decode_rate'] > 0
    assert 0 < stats['time_to_first_token'] < 60


def test_stop_interrupts_and_the_chat_goes_on(remote):
    history = ChatHistory(remote)
    history.append('user', 'Tell me a very long story about a robot.')
    new, _ = history.embed_chat()
    stream = stop_after(remote.generate(new, kv_cache=history.kv_cache, max_new_tokens=500,
                                        stop_tokens=history.stop_tokens))
    assert stream.stop_reason == 'stopped' and len(stream.tokens) < 20
    history.append('bot', stream)
    history.append('user', PROMPTS[0])
    rendered = remote.detokenize(history.render().tokens)
    start = time.monotonic()
    assert reply(remote, history, max_new_tokens=4)  # the server is free again
    assert time.monotonic() - start < 60 and sent(remote) == rendered


def test_function_result_goes_back_to_the_server(remote):
    VOLUME.clear()
    functions = [BotFunctions.find('SET_VOLUME')]
    history = ChatHistory(remote, tools=functions)
    history.append('user', 'Turn the volume down.')
    new, _ = history.embed_chat()
    out = remote.generate(new, kv_cache=history.kv_cache, functions=functions,
                          reply_prefix='Sure. SET_VOLUME(0.2)', max_new_tokens=6,
                          stop_tokens=history.stop_tokens)
    assert ''.join(out).startswith('Sure. SET_VOLUME(0.2) -> volume is 0.2')
    assert VOLUME == [0.2]
    assert sent(remote).endswith('<|im_start|>assistant\nSure. SET_VOLUME(0.2) -> volume is 0.2')
    history.append('bot', out)
    history.append('user', 'Thanks.')
    rendered = remote.detokenize(history.render().tokens)
    assert 'SET_VOLUME(0.2) -> volume is 0.2' in rendered
    reply(remote, history, max_new_tokens=4)
    assert sent(remote) == rendered


def test_local_ids_are_reversible(remote):
    text = 'Héllo, robot! 🤖 <|im_start|>user\n  two  spaces\tand tabs\n'
    assert remote.detokenize(remote.tokenize(text)) == text
    with pytest.raises(ValueError, match='never handed out'):
        remote.detokenize([10 ** 9])


def test_unreachable_server_says_so():
    port = free_port()
    with pytest.raises(RuntimeError, match=f'127.0.0.1:{port}'):
        NanoLLM.from_pretrained('default', api='openai', base_url=f'http://127.0.0.1:{port}')

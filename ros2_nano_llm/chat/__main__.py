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
The terminal chat: ``python3 -m ros2_nano_llm.chat --api hf --model default``.

Type a message and press enter. ``/reset`` clears the chat; an image path (vision models)
joins the chat and the next line asks about it; ``/quit`` or Ctrl-D ends; Ctrl-C during a
reply stops that reply and the chat goes on. ``--prompt`` runs scripted turns (text, image
paths, ``/reset``, ``default`` for a built-in set, or a ``.txt`` file of one prompt per line)
and exits. The options follow NanoLLM's ``python3 -m nano_llm.chat``.
"""

import argparse
import json
import logging
import os
import signal
import sys
from typing import List, Optional

from .. import settings

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')

# NanoLLM's DefaultChatPrompts (nano_llm/utils/prompts.py), for ``--prompt default``.
DEFAULT_PROMPTS = [
    'What is the weather forecast today?',
    'What is the fable involving a fox and grapes?',
    "What's a good recipe for making tabouli?",
    'How do I allocate memory in C?',
    'Implement a Python function to compute the Fibonacci numbers.',
    'What is the product of 9 and 8?',
    'Is Pluto really a planet or not?',
    'When was the Hoover Dam built?',
    "What's a training plan to run a marathon?",
    'If a train travels 120 miles in 2 hours, what is its average speed?',
]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog='python3 -m ros2_nano_llm.chat',
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description=__doc__.split('\n')[0])
    # the settings the node has too: flags, defaults and help from the one table
    settings.add_arguments(p)
    p.add_argument('--prompt', action='append', default=None,
                   help="scripted turn (repeatable): text, an image path, /reset, 'default' "
                        '(a built-in set) or a .txt/.json file of prompts; runs them and exits')
    p.add_argument('--history', default=None, metavar='FILE',
                   help='resume the chat saved in FILE and save it there after each turn')
    p.add_argument('--disable-streaming', action='store_true',
                   help='print each reply whole once it is done, not piece by piece')
    p.add_argument('--disable-stats', action='store_true',
                   help='do not print the generation figures after each reply')
    p.add_argument('--print-stats', action='store_true',
                   help='(kept for old scripts: the figures are printed by default)')
    p.add_argument('--prompt-color', default='blue', help='colour of the prompts (termcolor)')
    p.add_argument('--reply-color', default='green', help='colour of the replies (termcolor)')
    p.add_argument('--no-color', action='store_true', help='plain output')
    p.add_argument('--log-level', default='warning', help='python logging level')
    p.add_argument('--debug', '--verbose', action='store_true',
                   help='log at debug level (same as --log-level debug)')
    args = p.parse_args(argv)
    if args.debug:
        args.log_level = 'debug'
    return args


def load_prompts(entries: Optional[List[str]]) -> Optional[List[str]]:
    """
    Expand ``--prompt`` entries into the scripted turns (None when there are none).

    ``default`` (alone or first) gives NanoLLM's built-in prompt set; a ``.txt`` file gives
    its non-empty lines, a ``.json`` file its list of strings; anything else is one turn.
    Raises ValueError for a prompt file that cannot be read.
    """
    if entries is None:
        return None
    if entries and entries[0].strip().lower() in ('default', 'defaults'):
        entries = DEFAULT_PROMPTS + entries[1:]
    out: List[str] = []
    for entry in entries:
        path = os.path.expanduser(entry.strip())
        if path.lower().endswith(('.txt', '.json')) and os.path.isfile(path):
            try:
                with open(path, encoding='utf-8') as f:
                    if path.lower().endswith('.json'):
                        data = json.load(f)
                        lines = [data] if isinstance(data, str) else list(data)
                    else:
                        lines = f.read().splitlines()
            except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
                raise ValueError(f'cannot read prompts from {path}: {error}') from None
            out.extend(str(line) for line in lines if str(line).strip())
        else:
            out.append(entry)
    return out


class Printer:
    """Coloured terminal output (plain when not a terminal or --no-color)."""

    def __init__(self, color: bool):
        self.color = color and sys.stdout.isatty()
        try:
            from termcolor import colored
            self._colored = colored
        except ImportError:
            self.color = False

    def __call__(self, text: str, color: Optional[str] = None, end: str = '') -> None:
        """Write ``text`` (in ``color``) and flush."""
        if self.color and color and text:
            text = self._colored(text, color)
        sys.stdout.write(text + end)
        sys.stdout.flush()


def is_image_path(text: str) -> bool:
    """Return True if ``text`` names an image file (or URL)."""
    return text.lower().endswith(IMAGE_EXTENSIONS) and (
        os.path.isfile(os.path.expanduser(text)) or text.startswith(('http://', 'https://')))


class StopOnInterrupt:
    """
    While active (one turn), Ctrl-C (SIGINT) stops the reply instead of ending the program.

    The handler only asks the reply to stop (at once if it has started, else as soon as it
    does); the reply then ends normally, so the chat keeps what was said and goes on.
    Outside the main thread it does nothing.
    """

    def __init__(self):
        self._reply = None
        self.interrupted = False
        self._previous = None

    @property
    def reply(self):
        """Return the reply that Ctrl-C stops (None before it starts)."""
        return self._reply

    @reply.setter
    def reply(self, reply):
        self._reply = reply
        if self.interrupted:
            reply.stop()

    def _handle(self, signum, frame):
        self.interrupted = True
        if self._reply is not None:
            self._reply.stop()

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def run_turn(chat, entry: str, args: argparse.Namespace, out: Printer) -> None:
    """Handle one line: a command, an image, or a prompt that gets a reply."""
    history = chat.history
    if entry in ('/reset', '/clear'):
        chat.reset()
        out('chat reset', 'yellow', end='\n')
        return
    if is_image_path(entry):
        history.append('user', image=os.path.expanduser(entry))
        out(f'image added: {history[-1].describe()}', 'yellow', end='\n')
        return
    with StopOnInterrupt() as interrupt:
        # the session's turn: the prompt is taken back if the reply fails
        turn = chat.start(entry, settings.from_args(args))
        reply = interrupt.reply = turn.reply
        try:
            if args.disable_streaming:
                out(reply.wait(), args.reply_color)
            else:
                for piece in reply:
                    out(piece, args.reply_color)
            reply.wait()
        finally:
            chat.finish(turn)
        out('', end='\n\n')
        if reply.error is not None:
            raise RuntimeError(f'the reply failed, the prompt was taken back: {reply.error}')
        if interrupt.interrupted:
            out('(reply stopped)', 'yellow', end='\n')
        if not args.disable_stats:
            s = reply.record.figures.as_dict()  # this reply's own figures
            out(f"[{s['input_tokens']} in / {s['output_tokens']} out, "
                f"TTFT {s['time_to_first_token'] * 1000:.0f} ms, "
                f"prefill {s['prefill_rate']:.0f} tok/s, decode {s['decode_rate']:.1f} tok/s, "
                f'cache {len(history.kv_cache)} tokens]', 'cyan', end='\n')


def main(argv: Optional[List[str]] = None) -> int:
    """Run the terminal chat; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger(__name__).debug('arguments: %s', vars(args))
    from ..llm import NanoLLM
    from .session import ChatSession
    out = Printer(not args.no_color)
    try:
        prompts = load_prompts(args.prompt)
        config = settings.from_args(args)
        model = NanoLLM.from_pretrained(**config.load_options())
    except (ValueError, RuntimeError, FileNotFoundError, ImportError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    try:
        chat = ChatSession.build(model, config, print_stats=not args.disable_stats)
    except (ValueError, RuntimeError) as error:  # build() closed the model
        print(f'error: {error}', file=sys.stderr)
        return 2
    if args.history:
        from .storage import restore
        try:
            out(restore(chat.history, args.history).note, 'yellow', end='\n')
        except OSError as error:
            chat.close()
            print(f'error: {error}', file=sys.stderr)
            return 2
    try:
        return chat_loop(chat, prompts, args, out)
    finally:
        chat.close()  # end the model's worker before the interpreter goes


def chat_loop(chat, prompts: Optional[List[str]], args: argparse.Namespace,
              out: Printer) -> int:
    """Read prompts (scripted or typed) and answer them until the end; return the exit code."""
    lines = iter(prompts) if prompts is not None else None
    while True:
        if lines is not None:
            entry = next(lines, None)
            if entry is None:
                return 0
            out('>> ', args.prompt_color)
            out(entry, args.prompt_color, end='\n')
        else:
            out('>> ', args.prompt_color)
            try:
                entry = input()
            except (EOFError, KeyboardInterrupt):
                out('', end='\n')
                return 0
        entry = entry.strip()
        if entry in ('/quit', '/exit'):
            return 0
        if not entry:
            continue
        try:
            run_turn(chat, entry, args, out)
            if args.history:
                chat.history.save(args.history)
        except (ValueError, RuntimeError, OSError) as error:
            out(f'error: {error}', 'red', end='\n')


if __name__ == '__main__':
    sys.exit(main())

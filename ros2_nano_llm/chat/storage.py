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
A chat on disk: one versioned JSON file, images as PNG files beside it (docs/history-format.md).

Saving is split in two so a caller can keep the slow part off its hot path: ``snapshot()``
copies what the chat holds now (cheap: lists of ints and strings, image arrays by
reference), and ``write()`` encodes it and replaces the file crash-safely (write a temp file
in the same folder, flush, fsync, rename, fsync the folder), so a kill at any instant leaves
the old file or the new one, never a torn one. ``load()`` checks the file against the chat
it goes into (version, model, template, context) and raises ``HistoryFileError`` saying why;
``quarantine()`` moves a bad file aside; it never deletes one.

Every field is checked against the range it is used in before the chat changes: types,
token ids inside the vocabulary, saved token ids on bot entries only, image sizes, and the
application's ``extra`` data through the caller's ``check_extra``. A bot entry's saved
token ids never bring template control tokens into the chat: the chat splits a reply's
tool turns into entries of their own, so the template never puts its markup inside a bot
entry; a bot entry whose ids hold one (a crafted file, or a model that emitted one) keeps
its text, which is tokenized again as plain text, and the loader says so.
"""

from dataclasses import dataclass, field
import datetime
import hashlib
import json
import os
import re
import tempfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import numpy as np

FORMAT = 'ros2_nano_llm.chat'
VERSION = 1
TEMP_SUFFIX = '.tmp'            # temp files beside the chat: <name>.<random>.tmp
IMAGES_SUFFIX = '.images'       # the folder of image files beside the chat
_IMAGE_NAME = re.compile(r'^[0-9a-f]{40}\.png$')
_IMAGE_TEMP = re.compile(r'^[0-9a-f]{40}\.png\.\w+\.tmp$')  # left by a write that was killed


class HistoryFileError(ValueError):
    """A chat file that cannot be loaded into this chat; ``reason`` says why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"chat file '{path}': {reason}")
        self.path = path
        self.reason = reason


@dataclass
class Snapshot:
    """What a chat held at one instant, ready to be written (``write()``) on any thread."""

    doc: Dict[str, Any]
    images: Dict[int, np.ndarray] = field(default_factory=dict)  # entry index -> RGB array


# ---- saving ----------------------------------------------------------------------------
def snapshot(history: Any, extra: Optional[Dict[str, Any]] = None) -> Snapshot:
    """
    Copy the chat as it is now (under its lock); cheap, so the caller's thread may do it.

    ``extra`` is the application's own JSON-able data (the node keeps its turn id there).
    Raises ValueError for an entry that cannot be saved (content other than text or image).
    """
    with history.lock:
        entries: List[Dict[str, Any]] = []
        images: Dict[int, np.ndarray] = {}
        for msg in history.messages:
            entry: Dict[str, Any] = {'role': msg.role, 'type': msg.type}
            if msg.type == 'text':
                entry['text'] = msg.content
                if msg.role == 'bot' and msg.tokens is not None:
                    entry['tokens'] = list(msg.tokens)  # generated ids: never re-tokenized
            elif msg.type == 'image':
                images[len(entries)] = msg.content  # (H, W, 3) uint8; never changed in place
                entry['width'], entry['height'] = int(msg.content.shape[1]), \
                    int(msg.content.shape[0])
            else:
                raise ValueError(f"cannot save a chat entry of type '{msg.type}' "
                                 '(only text and images)')
            entries.append(entry)
        cfg = history.model.config
        doc = {
            'format': FORMAT,
            'version': VERSION,
            'saved_at': _utc_now().isoformat(timespec='milliseconds').replace('+00:00', 'Z'),
            'model': {'name': cfg.name, 'vocab_size': int(cfg.vocab_size)},
            'template': history.template.name,
            'system_prompt': history.system_prompt,
            'entries': entries,
            'extra': dict(extra or {}),
        }
    return Snapshot(doc, images)


def write(snap: Snapshot, path: str) -> None:
    """
    Write ``snap`` to ``path`` crash-safely: images first, then the JSON file by rename.

    Image files are named by their content (SHA-1), so an existing one is never rewritten;
    after the new JSON file is in place, image files it no longer names are removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    doc = dict(snap.doc, entries=[dict(e) for e in snap.doc['entries']])
    if snap.images:
        image_dir = path + IMAGES_SUFFIX
        os.makedirs(image_dir, exist_ok=True)
        for index, array in snap.images.items():
            doc['entries'][index]['image'] = _write_image(image_dir, array)
        _fsync_dir(image_dir)
    data = json.dumps(doc, ensure_ascii=False, separators=(',', ':')).encode('utf-8')
    _replace(path, data)
    _remove_unused_images(path, doc)


def save(history: Any, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
    """Save the chat to ``path`` now (``snapshot()`` then ``write()``)."""
    write(snapshot(history, extra), path)


def _replace(path: str, data: bytes) -> None:
    # A new file with a random name in the same folder, created exclusively (O_EXCL, which
    # never follows a link): whatever is planted beside the chat is never written through.
    folder, name = os.path.split(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=name + '.', suffix=TEMP_SUFFIX, dir=folder)
    try:
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        _remove(temp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))  # make the rename itself durable


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass  # a temp file left behind costs disk space only


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_image(image_dir: str, array: np.ndarray) -> str:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    digest = hashlib.sha1(array.tobytes())
    digest.update(repr(array.shape).encode())
    name = digest.hexdigest() + '.png'
    target = os.path.join(image_dir, name)
    if not os.path.exists(target):
        import io
        from PIL import Image
        buffer = io.BytesIO()
        Image.fromarray(array, 'RGB').save(buffer, format='PNG')
        _replace(target, buffer.getvalue())
    return name


def _remove_unused_images(path: str, doc: Dict[str, Any]) -> None:
    image_dir = path + IMAGES_SUFFIX
    if not os.path.isdir(image_dir):
        return
    used = {e['image'] for e in doc['entries'] if e.get('type') == 'image'}
    for name in os.listdir(image_dir):
        if (_IMAGE_NAME.match(name) and name not in used) or _IMAGE_TEMP.match(name):
            try:
                os.remove(os.path.join(image_dir, name))
            except OSError:
                pass  # an image left behind costs disk space only


# ---- loading ---------------------------------------------------------------------------
def read(path: str) -> Dict[str, Any]:
    """
    Read and check a chat file's structure (no model needed); return the document.

    Raises HistoryFileError when the file is empty, not JSON, of another format or version,
    or malformed; OSError (FileNotFoundError when there is none) when it cannot be read.
    """
    path = os.fspath(path)
    with open(path, 'rb') as handle:  # OSError: not a bad file, a path that cannot be read
        data = handle.read()
    if not data.strip():
        raise HistoryFileError(path, 'the file is empty')
    try:
        doc = json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as error:
        raise HistoryFileError(path, f'not UTF-8 text (corrupt): {error}') from error
    except json.JSONDecodeError as error:
        raise HistoryFileError(path, f'not valid JSON (truncated or corrupt): {error}') from error
    except RecursionError as error:
        raise HistoryFileError(path, 'not a chat file (JSON nested too deep)') from error
    if not isinstance(doc, dict) or doc.get('format') != FORMAT:
        raise HistoryFileError(path, f"not a chat file (its 'format' is not '{FORMAT}')")
    version = doc.get('version')
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HistoryFileError(path, f"bad 'version' {version!r}")
    if version > VERSION:
        raise HistoryFileError(path, f'written in format version {version}; this version '
                                     f'reads up to {VERSION}: update ros2_nano_llm')
    _check_structure(path, doc)
    return doc


def _check_structure(path: str, doc: Dict[str, Any]) -> None:
    def bad(what: str) -> HistoryFileError:
        return HistoryFileError(path, f'malformed: {what}')
    model = doc.get('model')
    if not isinstance(model, dict) or not isinstance(model.get('name'), str):
        raise bad("'model' must be an object with a 'name'")
    if not isinstance(doc.get('template'), str):
        raise bad("'template' must be a string")
    if doc.get('system_prompt') is not None and not isinstance(doc['system_prompt'], str):
        raise bad("'system_prompt' must be a string or null")
    vocab = model.get('vocab_size')
    if vocab is not None and not _is_int(vocab, 1):
        raise bad("'model.vocab_size' must be a positive integer")
    if not isinstance(doc.get('saved_at', ''), str):
        raise bad("'saved_at' must be a string")
    if not isinstance(doc.get('extra', {}), dict):
        raise bad("'extra' must be an object")
    entries = doc.get('entries')
    if not isinstance(entries, list):
        raise bad("'entries' must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get('role'), str) \
                or not entry['role']:
            raise bad(f'entry {i} must be an object with a role')
        if entry.get('type') == 'text':
            if not isinstance(entry.get('text'), str):
                raise bad(f"entry {i} has no 'text' string")
            tokens = entry.get('tokens')
            if tokens is not None and entry['role'] != 'bot':
                raise bad(f"entry {i}: only bot entries keep their 'tokens' (a "
                          f"{entry['role']} entry is tokenized from its text)")
            if tokens is not None and not (isinstance(tokens, list) and all(
                    _is_int(t, 0) for t in tokens)):
                raise bad(f"entry {i}: 'tokens' must be a list of integers >= 0")
        elif entry.get('type') == 'image':
            name = entry.get('image')
            if not isinstance(name, str) or not _IMAGE_NAME.match(name):
                raise bad(f"entry {i}: 'image' must name a file in the images folder")
            if any(not _is_int(entry.get(side, 1), 1) for side in ('width', 'height')):
                raise bad(f"entry {i}: 'width' and 'height' must be positive integers")
        else:
            raise bad(f"entry {i} has type {entry.get('type')!r} (text or image)")


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


CheckExtra = Callable[[Dict[str, Any]], str]  # the file's 'extra' -> why it is bad, or ''


def load(history: Any, path: str, check_extra: Optional[CheckExtra] = None) -> Dict[str, Any]:
    """
    Replace the chat with the one saved in ``path``; return the file's ``extra`` data.

    The file must be for this model and template and fit the model's context; bot turns
    keep their saved token ids, so the loaded chat renders exactly as it did when saved
    and the next reply continues it as if there had been no restart. ``check_extra``
    checks the application's data first (a reason makes the file bad). On any error the
    chat is left as it was and HistoryFileError (or OSError) says why.
    """
    return _load(history, path, check_extra)[0]


def _load(history: Any, path: str, check_extra: Optional[CheckExtra]
          ) -> Tuple[Dict[str, Any], List[str]]:
    # load() and restore(): the file's extra and the notes on entries taken as plain text
    path = os.fspath(path)
    doc = read(path)
    reason = check_extra(dict(doc.get('extra', {}))) if check_extra is not None else ''
    if reason:
        raise HistoryFileError(path, f"malformed: 'extra': {reason}")
    cfg = history.model.config
    if doc['model']['name'] != cfg.name:
        raise HistoryFileError(path, f"written for model '{doc['model']['name']}'; this chat "
                                     f"runs '{cfg.name}'")
    vocab = doc['model'].get('vocab_size')
    if vocab is not None and vocab != cfg.vocab_size:
        raise HistoryFileError(path, f'written for a vocabulary of {vocab} tokens; this model '
                                     f'has {cfg.vocab_size}')
    if doc['template'] != history.template.name:
        raise HistoryFileError(path, f"written with chat template '{doc['template']}'; this "
                                     f"chat uses '{history.template.name}'")
    messages, notes = _messages(path, doc, cfg.vocab_size, control_tokens(history))
    with history.lock:
        old_messages, old_prompt = list(history.messages), history.system_prompt
        try:
            history.system_prompt = doc.get('system_prompt')  # resets: the system entry only
            for message in messages:
                history.append(message.role, message)
            length = len(history.render(add_generation_prompt=False))
            if length > cfg.max_context_len:
                raise HistoryFileError(path, f'the chat takes {length} tokens; the context '
                                             f'holds {cfg.max_context_len}')
        except BaseException as error:
            history.system_prompt = old_prompt
            history.messages = old_messages
            history.reindex()
            if isinstance(error, ValueError) and not isinstance(error, HistoryFileError):
                raise HistoryFileError(path, f'an entry does not fit this chat: {error}') \
                    from error
            raise
    return dict(doc.get('extra', {})), notes


def control_tokens(history: Any) -> Set[int]:
    """
    Return the template's control-token ids: its markup's ids that no plain text gives.

    Each piece of every role's markup is tokenized twice, with control tokens parsed and
    as plain text; the ids only the first has (``<|im_start|>``, ``<|eot_id|>``, ...) are
    the template's control tokens. The template's stop strings count as markup too.
    """
    tokenize, template = history.model.backend.tokenize, history.template
    pieces = {template.generation_prompt(), *history.stop_tokens}
    for role in template.roles:
        pieces.update(template.split(role))
    ids: Set[int] = set()
    for piece in pieces:
        if piece:
            ids.update(set(tokenize(piece, special=True)) - set(tokenize(piece, special=False)))
    return ids


def _messages(path: str, doc: Dict[str, Any], vocab_size: int, control: Set[int]
              ) -> Tuple[List[Any], List[str]]:
    from .message import ChatMessage
    out, notes = [], []
    image_dir = path + IMAGES_SUFFIX
    for i, entry in enumerate(doc['entries']):
        if entry['role'] == 'system':
            continue  # rebuilt from 'system_prompt' (with the loading chat's tools)
        if entry['type'] == 'image':
            image_path = os.path.join(image_dir, entry['image'])
            if not os.path.isfile(image_path):
                raise HistoryFileError(path, f"entry {i}: image file '{image_path}' is missing")
            try:
                out.append(ChatMessage(entry['role'], image=image_path))
            except ValueError as error:
                raise HistoryFileError(path, f'entry {i}: {error}') from error
            continue
        tokens = entry.get('tokens')
        if tokens is not None and any(t < 0 or t >= vocab_size for t in tokens):
            raise HistoryFileError(path, f'entry {i}: token ids outside the vocabulary '
                                         f'(0..{vocab_size - 1})')
        if tokens is not None and control.intersection(tokens):
            # never fed as they are: the text stays, tokenized as plain text
            notes.append(f'entry {i}: its saved token ids hold template control tokens '
                         f'{sorted(control.intersection(tokens))}, which the template never '
                         'puts in a bot entry; its text is used as plain text instead')
            tokens = None
        out.append(ChatMessage(entry['role'], text=entry['text'], tokens=tokens))
    return out, notes


# ---- bad files ---------------------------------------------------------------------------
def quarantine(path: str, now: Optional[datetime.datetime] = None) -> str:
    """
    Move a bad chat file aside to ``<name>.corrupt-<UTC time>`` (never deleted); return it.

    Its images folder moves with it (``<name>.corrupt-<UTC time>.images``), so the moved
    file still loads by its new name once the reason is fixed. Raises OSError if it cannot.
    """
    path = os.fspath(path)
    stamp = (now or _utc_now()).strftime('%Y%m%dT%H%M%SZ')
    target, n = f'{path}.corrupt-{stamp}', 1
    while os.path.lexists(target) or os.path.lexists(target + IMAGES_SUFFIX):
        target, n = f'{path}.corrupt-{stamp}-{n}', n + 1
    os.rename(path, target)
    if os.path.isdir(path + IMAGES_SUFFIX):
        os.rename(path + IMAGES_SUFFIX, target + IMAGES_SUFFIX)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return target


class Restored(NamedTuple):
    """What ``restore()`` did: the file's ``extra``, a line for the log, where a bad file went."""

    extra: Dict[str, Any]
    note: str
    moved_to: Optional[str] = None  # the quarantined file, when the file was bad
    loaded: bool = False


def restore(history: Any, path: str, check_extra: Optional[CheckExtra] = None) -> Restored:
    """
    Load ``path`` into the chat if it exists; a bad file is moved aside and the chat kept.

    ``check_extra`` as in ``load()``. Raises OSError when the file cannot be read, or is bad
    and cannot be moved aside (then it must not be overwritten either).
    """
    try:
        extra, notes = _load(history, path, check_extra)
    except FileNotFoundError:
        return Restored({}, f"no saved chat at '{path}' yet: starting a new chat there")
    except HistoryFileError as error:
        moved = quarantine(path)
        return Restored({}, f'{error}; moved aside to {os.path.basename(moved)}, starting a '
                            'new chat', moved)
    note = f"chat restored from '{path}': {len(history)} entries"
    return Restored(extra, '; '.join([note, *notes]), None, True)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)

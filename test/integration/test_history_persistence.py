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
A chat on disk (chat/storage.py): round trips, exactness after loading, kills, bad files.

Real model forward passes (a tiny random-weight Llama, greedy) and real processes killed
with SIGKILL while they write.
"""

import json
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

from chat_helpers import chat, PROMPTS, recompute, reply
import numpy as np
from PIL import Image
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.chat import storage
from ros2_nano_llm.chat.__main__ import main as chat_main
from ros2_nano_llm.ros.persistence import ChatFile
from support.tiny_vision import build_tiny_llava

pytestmark = [pytest.mark.integration]

KILLS = 30


def _entries(history):
    return [(m.role, m.type, m.content if m.type == 'text' else m.content.tobytes(),
             m.tokens if m.role == 'bot' else None) for m in history.messages]


def test_round_trip_keeps_entries_bot_tokens_and_rendering(tiny_llama, tmp_path):
    history, _ = chat(tiny_llama, 3, system_prompt='You are a terse robot.')
    path = tmp_path / 'chat.json'
    history.save(path, extra={'turn_id': 3})
    doc = json.loads(path.read_text())
    assert doc['format'] == 'ros2_nano_llm.chat' and doc['version'] == storage.VERSION
    assert doc['model']['name'] == tiny_llama.config.name
    assert doc['template'] == history.template.name
    assert doc['system_prompt'] == 'You are a terse robot.'
    assert not os.path.exists(str(path) + storage.TEMP_SUFFIX)

    loaded = ChatHistory(tiny_llama)
    assert loaded.load(path) == {'turn_id': 3}
    assert _entries(loaded) == _entries(history)
    assert loaded.system_prompt == 'You are a terse robot.'
    assert loaded.render().keys == history.render().keys


def test_a_link_planted_at_a_temporary_path_is_never_written_through(tiny_llama, tmp_path):
    # issue 21 item 9: <history_file>.tmp planted as a link to another file got the chat
    history, _ = chat(tiny_llama, 1)
    path = tmp_path / 'chat.json'
    victim = tmp_path / 'victim.txt'
    victim.write_text('do not touch')
    planted = [tmp_path / ('chat.json' + storage.TEMP_SUFFIX), tmp_path / 'chat.json.tmp.tmp']
    for link in planted:
        link.symlink_to(victim)
    for _ in range(3):
        history.save(path)
    assert victim.read_text() == 'do not touch'
    assert all(link.is_symlink() for link in planted)  # left as they are, not reused
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['chat.json', 'victim.txt'] + [link.name for link in planted])  # no temp left
    assert ChatHistory(tiny_llama).load(path) == {}


def test_loaded_chat_continues_exactly_as_recomputed(tiny_llama, tmp_path):
    history, _ = chat(tiny_llama, 3)
    path = tmp_path / 'chat.json'
    history.save(path)
    loaded = ChatHistory(tiny_llama)
    loaded.load(path)
    for prompt in PROMPTS[3:5]:
        history.append('user', prompt)
        loaded.append('user', prompt)
        expected = recompute(tiny_llama, loaded)
        after_load = reply(tiny_llama, loaded)
        assert after_load == expected
        prefilled = tiny_llama.stats['input_tokens']
        assert after_load == reply(tiny_llama, history)
    # the second turn after loading prefilled only its own prompt: the rest was cached
    assert 0 < prefilled < len(loaded.render()) // 2


def test_images_are_saved_beside_the_file_and_restored(tmp_path):
    model = NanoLLM.from_pretrained(build_tiny_llava(str(tmp_path / 'llava')))
    try:
        rgb = np.random.default_rng(1).integers(0, 255, (20, 28, 3), dtype=np.uint8)
        history = ChatHistory(model)
        history.append('user', image=rgb)
        history.append('user', 'What is this?')
        reply(model, history)
        path = tmp_path / 'chat.json'
        history.save(path)
        doc = json.loads(path.read_text())
        image_entry = next(e for e in doc['entries'] if e['type'] == 'image')
        image_file = tmp_path / ('chat.json' + storage.IMAGES_SUFFIX) / image_entry['image']
        assert np.array_equal(np.asarray(Image.open(image_file).convert('RGB')), rgb)
        loaded = ChatHistory(model)
        loaded.load(path)
        assert _entries(loaded) == _entries(history)
        loaded.append('user', 'And now?')
        history.append('user', 'And now?')
        expected = recompute(model, loaded)
        assert reply(model, loaded) == expected == reply(model, history)
        # an image the chat no longer holds is removed with the next save
        history.reset()
        history.save(path)
        assert not image_file.exists()
    finally:
        model.close()


_WRITER = textwrap.dedent("""
    import pickle, sys
    from ros2_nano_llm.chat import storage
    snaps = pickle.load(open(sys.argv[1], 'rb'))
    path = sys.argv[2]
    storage.write(snaps[0], path)
    print('writing', flush=True)
    while True:
        for snap in snaps:
            storage.write(snap, path)
""")


def test_a_writer_killed_at_any_instant_leaves_a_loadable_file(tiny_llama, tmp_path):
    # chats of 1..4 turns, two of them with an image entry (written as files beside)
    snaps = []
    for turns in range(1, 5):
        history, _ = chat(tiny_llama, turns)
        snap = storage.snapshot(history, {'turn_id': turns})
        if turns % 2:
            rgb = np.full((16, 16, 3), turns * 40, dtype=np.uint8)
            snap.doc['entries'].append({'role': 'user', 'type': 'image'})
            snap.images[len(snap.doc['entries']) - 1] = rgb
        snaps.append(snap)
    snap_file = tmp_path / 'snaps.pkl'
    snap_file.write_bytes(pickle.dumps(snaps))
    expected = {s.doc['extra']['turn_id']: s.doc['entries'] for s in snaps}
    path = tmp_path / 'chat.json'
    rng = random.Random(10)
    for kill in range(KILLS):
        writer = subprocess.Popen([sys.executable, '-c', _WRITER, str(snap_file), str(path)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline().strip() == 'writing'
            time.sleep(rng.uniform(0.0, 0.05))  # a random instant of the write cycle
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
            writer.stdout.close()
        doc = storage.read(path)  # never torn: parses and is well formed
        turn_id = doc['extra']['turn_id']
        entries = [{k: v for k, v in e.items() if k not in ('image', 'width', 'height')}
                   for e in doc['entries']]
        assert entries == expected[turn_id], f'kill {kill}: file differs from what was saved'
        for entry in doc['entries']:
            if entry['type'] == 'image':
                image = Image.open(str(path) + storage.IMAGES_SUFFIX + '/' + entry['image'])
                assert np.asarray(image.convert('RGB'))[0, 0, 0] == turn_id * 40
        if not any(e['type'] == 'image' for e in doc['entries']):
            loaded = ChatHistory(tiny_llama)
            assert loaded.load(path)['turn_id'] == turn_id


def _valid_file(model, path):
    history, _ = chat(model, 2)
    history.save(path, extra={'turn_id': 2})
    return path.read_bytes()


def _edited(data, **changes):
    doc = json.loads(data)
    for key, value in changes.items():
        if isinstance(value, dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


BAD_FILES = {
    'empty': (lambda data: b'', 'the file is empty'),
    'blank': (lambda data: b'\n  \n', 'the file is empty'),
    'corrupt': (lambda data: b'\x00\xff\xfegarbage{', 'not UTF-8 text|not valid JSON'),
    'truncated': (lambda data: data[:len(data) // 2], r'not valid JSON \(truncated or corrupt\)'),
    'not a chat': (lambda data: b'{"entries": []}', 'not a chat file'),
    'nested too deep': (lambda data: b'[' * 100000 + b']' * 100000, 'nested too deep'),
    'newer version': (lambda data: _edited(data, version=storage.VERSION + 1),
                      'format version 2; .*update ros2_nano_llm'),
    'other model': (lambda data: _edited(data, model={'name': 'SmolLM2-135M-Instruct'}),
                    "written for model 'SmolLM2-135M-Instruct'"),
    'other vocabulary': (lambda data: _edited(data, model={'vocab_size': 7}),
                         'vocabulary of 7 tokens'),
    'other template': (lambda data: _edited(data, template='llama-2'),
                       "chat template 'llama-2'"),
    'token out of range': (lambda data: data.replace(b'"tokens":[', b'"tokens":[999999999,', 1),
                           'token ids outside the vocabulary'),
    'unknown role': (lambda data: data.replace(b'"role":"user"', b'"role":"narrator"', 1),
                     "no 'narrator' role"),
    'missing image': (lambda data: _edited(data, entries=[
        {'role': 'user', 'type': 'image', 'image': 'a' * 40 + '.png'}]), 'is missing'),
}


@pytest.mark.parametrize('kind', sorted(BAD_FILES))
def test_bad_file_raises_with_the_reason_and_leaves_the_chat(tiny_llama, tmp_path, kind):
    make, reason = BAD_FILES[kind]
    path = tmp_path / 'chat.json'
    path.write_bytes(make(_valid_file(tiny_llama, path)))
    history, _ = chat(tiny_llama, 1)
    before = _entries(history)
    with pytest.raises(storage.HistoryFileError, match=reason) as error:
        history.load(path)
    assert error.value.path == str(path)
    assert _entries(history) == before
    history.append('user', 'Still here?')  # and it goes on exactly
    assert recompute(tiny_llama, history) == reply(tiny_llama, history)


def test_a_chat_longer_than_the_context_is_refused(tiny_model_dir, tiny_llama, tmp_path):
    path = tmp_path / 'chat.json'
    history, _ = chat(tiny_llama, 4)
    history.save(path)
    length = len(history.render(add_generation_prompt=False))
    short = NanoLLM.from_pretrained(tiny_model_dir('llama'), max_context_len=length - 10)
    try:
        with pytest.raises(storage.HistoryFileError, match=f'takes {length} tokens; the '
                           f'context holds {length - 10}'):
            ChatHistory(short).load(path)
    finally:
        short.close()


def test_quarantine_moves_the_file_and_its_images_aside(tiny_llama, tmp_path):
    path = tmp_path / 'chat.json'
    path.write_bytes(b'{"torn')
    images = tmp_path / ('chat.json' + storage.IMAGES_SUFFIX)
    images.mkdir()
    (images / ('b' * 40 + '.png')).write_bytes(b'png')
    history = ChatHistory(tiny_llama)
    restored = storage.restore(history, path)
    assert restored.moved_to and not restored.loaded and restored.extra == {}
    assert 'not valid JSON' in restored.note and 'moved aside' in restored.note
    moved = restored.moved_to
    assert os.path.basename(moved).startswith('chat.json.corrupt-')
    assert open(moved, 'rb').read() == b'{"torn' and not path.exists()
    assert open(moved + storage.IMAGES_SUFFIX + '/' + 'b' * 40 + '.png', 'rb').read() == b'png'
    # a second bad file in the same second gets its own name: nothing is overwritten
    path.write_bytes(b'')
    again = storage.restore(history, path).moved_to
    assert again != moved and os.path.exists(moved) and os.path.exists(again)
    # a missing file is simply a new chat
    restored = storage.restore(history, tmp_path / 'new.json')
    assert not restored.moved_to and 'no saved chat' in restored.note


def test_terminal_chat_resumes_with_history(tiny_model_dir, tiny_llama, tmp_path, capsys):
    path = tmp_path / 'chat.json'
    args = ['--model', tiny_model_dir('llama'), '--no-color', '--max-new-tokens', '12',
            '--history', str(path)]
    assert chat_main(args + ['--prompt', PROMPTS[0], '--prompt', PROMPTS[1]]) == 0
    assert 'no saved chat' in capsys.readouterr().out
    assert chat_main(args + ['--prompt', PROMPTS[2]]) == 0
    assert 'chat restored from' in capsys.readouterr().out
    resumed = ChatHistory(tiny_llama)
    resumed.load(path)
    expected, _ = chat(tiny_llama, 3)
    assert _entries(resumed)[1:] == _entries(expected)[1:]


def test_chat_file_writer_keeps_the_newest_change_and_reports_failures(tiny_llama, tmp_path,
                                                                       caplog):
    path = tmp_path / 'node' / 'chat.json'
    chat_file = ChatFile(str(path), logging.getLogger('test.chat_file'))
    history, _ = chat(tiny_llama, 3)
    for turn_id in range(1, 30):  # faster than the disk: only the newest has to be written
        chat_file.changed(history, turn_id)
    assert chat_file.flush(30.0)
    assert storage.read(path)['extra'] == {'turn_id': 29}
    assert chat_file.warning == '' and chat_file.writes >= 1
    path.unlink()
    path.mkdir()  # the next write cannot replace a folder: logged, shown, the chat goes on
    with caplog.at_level(logging.ERROR, logger='test.chat_file'):
        chat_file.changed(history, 30)
        assert chat_file.flush(30.0)
    assert 'chat not saved' in chat_file.warning and 'chat not saved' in caplog.text
    path.rmdir()
    chat_file.changed(history, 31)
    assert chat_file.close(30.0)  # writes what is pending, then ends its thread
    assert storage.read(path)['extra'] == {'turn_id': 31} and chat_file.warning == ''
    chat_file.changed(history, 32)  # after close: ignored
    assert storage.read(path)['extra'] == {'turn_id': 31}


def test_terminal_chat_moves_a_bad_history_aside(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / 'chat.json'
    path.write_bytes(b'{"format": "ros2_nano_llm.chat", "version": 1, "entr')
    assert chat_main(['--model', tiny_model_dir('llama'), '--no-color', '--max-new-tokens',
                      '4', '--history', str(path), '--prompt', PROMPTS[0]]) == 0
    out = capsys.readouterr().out
    assert 'not valid JSON (truncated or corrupt)' in out and 'moved aside to' in out
    moved, = tmp_path.glob('chat.json.corrupt-*')
    assert moved.read_bytes().endswith(b'"entr')
    assert storage.read(path)['entries'][-2]['text'] == PROMPTS[0]

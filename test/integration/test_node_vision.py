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
Images over real DDS into a vision model's chat (a tiny random-weight LLaVA).

The newest frame joins the next prompt (one image entry per prompt at most, never one per
camera frame) while it is younger than ``max_image_age``; bad frames are logged and dropped.
Expected replies come from the library run in this process on the same model and pixels.
"""

import io
import threading
import time

from node_harness import grep, reference_replies, start_node, stop_node
import numpy as np
from PIL import Image as PILImage
import pytest
from ros2_nano_llm import NanoLLM
from support.tiny_vision import build_tiny_llava

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope='module')
def llava_dir(tmp_path_factory):
    """Return the directory of a tiny random-weight LLaVA."""
    return build_tiny_llava(str(tmp_path_factory.mktemp('tiny-llava')))


@pytest.fixture(scope='module')
def llava(llava_dir):
    """Return the tiny LLaVA loaded in this process (for the expected replies)."""
    model = NanoLLM.from_pretrained(llava_dir)
    yield model
    model.close()


@pytest.fixture(scope='module')
def vision_node(llava_dir, tmp_path_factory):
    """Start one node on the tiny LLaVA for the module."""
    process, client = start_node(tmp_path_factory.mktemp('node_vision'), {'model': llava_dir})
    yield process, client
    stop_node(process, client)


@pytest.fixture
def node(vision_node):
    """Return (process, client, log offset) with an empty chat and no frame held."""
    process, client = vision_node
    assert client.set_params(max_image_age=30.0, max_new_tokens=24)[0].successful
    assert client.call('reset').success
    client.ask('clear any held frame')  # a frame waiting from an earlier test joins this turn
    assert client.call('reset').success
    client.settle()
    yield process, client, len(process.log())
    assert process.alive, process.log()[-3000:]


def _image(seed, height=48, width=64):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _jpeg(rgb):
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format='JPEG', quality=90)
    return out.getvalue()


def _deliver():
    time.sleep(0.3)  # frames are best effort and unacknowledged: give one time to arrive


def test_image_joins_the_next_prompt(node, llava):
    process, client, _ = node
    rgb = _image(1)
    client.publish_image(rgb)
    _deliver()
    _, reply = client.ask('What is in this picture?')
    chat = client.history_texts()
    assert chat[1:] == [('user', 'image', '<image 64x48>'),
                        ('user', 'text', 'What is in this picture?'), ('bot', 'text', reply)]
    assert reply == reference_replies(llava, [(rgb, 'What is in this picture?')])[0]
    # the frame was used: the next prompt has no image
    _, reply2 = client.ask('And now?')
    assert client.history_texts()[4:] == [('user', 'text', 'And now?'),
                                          ('bot', 'text', reply2)]


def test_bgr_and_compressed_frames_join_too(node, llava):
    process, client, _ = node
    rgb = _image(2, 40, 40)
    client.publish_image(np.ascontiguousarray(rgb[..., ::-1]), encoding='bgr8')
    _deliver()
    _, reply = client.ask('Describe it.')
    assert reply == reference_replies(llava, [(rgb, 'Describe it.')])[0]
    jpeg = _jpeg(_image(3, 32, 48))
    client.publish_compressed(jpeg)
    _deliver()
    client.ask('And this one?')
    images = [e for e in client.history_texts() if e[1] == 'image']
    assert images == [('user', 'image', '<image 40x40>'), ('user', 'image', '<image 48x32>')]


def test_a_30hz_camera_adds_one_image_per_prompt(node):
    process, client, _ = node
    stop = threading.Event()
    sent = []

    def camera():
        seq = 0
        while not stop.is_set():
            client.publish_image(_image(seq % 5, 24, 32))
            sent.append(seq)
            seq += 1
            time.sleep(1 / 30)
    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    try:
        _deliver()
        for prompt in ('one', 'two', 'three'):
            client.ask(prompt)
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(5.0)
    chat = client.history_texts()
    assert len(sent) > 20
    assert [e[:2] for e in chat[1:]] == [('user', 'image'), ('user', 'text'), ('bot', 'text')] * 3
    assert client.history().cache_tokens < 3 * (16 + 40 + 24) + 60


def test_a_frame_older_than_max_image_age_is_not_used(node):
    process, client, _ = node
    assert client.set_params(max_image_age=0.5)[0].successful
    client.publish_image(_image(4))
    time.sleep(1.2)
    _, reply = client.ask('Anything to see?')
    assert client.history_texts()[1:] == [('user', 'text', 'Anything to see?'),
                                          ('bot', 'text', reply)]


@pytest.mark.parametrize('kind', ['step_too_small', 'step_too_large', 'unknown_encoding',
                                  'corrupt_jpeg'])
def test_bad_frame_is_logged_and_dropped(node, kind):
    process, client, log_start = node
    client.ask('A turn before.')
    before = client.history_texts()
    rgb = _image(5, 16, 16)
    if kind == 'step_too_small':
        client.publish_image(rgb, step=16 * 3 - 1)
        expected = r'Image frame dropped: sensor_msgs/Image step 47 is smaller than one row'
    elif kind == 'step_too_large':
        client.publish_image(rgb, step=16 * 3 + 8)
        expected = r'Image frame dropped: sensor_msgs/Image data has 768 bytes but step 56'
    elif kind == 'unknown_encoding':
        client.publish_image(rgb, encoding='rgb7')
        expected = r"Image frame dropped: unsupported sensor_msgs/Image encoding 'rgb7'"
    else:
        client.publish_compressed(_jpeg(rgb)[:40] + b'\x00' * 100)
        expected = r'CompressedImage frame dropped: .*cannot decode the image data'
    process.wait_for_log(expected, timeout=10.0, start=log_start)
    assert client.history_texts() == before
    _, reply = client.ask('Did an image come?')
    assert client.history_texts() == before + [('user', 'text', 'Did an image come?'),
                                               ('bot', 'text', reply)]
    assert not grep(process, 'Traceback', log_start)


def test_a_large_frame_is_kept_at_the_size_the_encoder_uses(node):
    """Issue 11 item 7: frames are scaled down before they are kept (not held in full)."""
    process, client, log_start = node
    client.publish_image(_image(6, 200, 300))  # the tiny LLaVA works at 32 px (64 kept)
    _deliver()
    _, reply = client.ask('What is this?')
    assert client.history_texts()[1:] == [('user', 'image', '<image 96x64>'),
                                          ('user', 'text', 'What is this?'),
                                          ('bot', 'text', reply)]


def test_a_frame_above_max_image_size_is_dropped_before_decoding(node):
    process, client, log_start = node
    assert client.set_params(max_image_size=100)[0].successful
    try:
        client.publish_image(_image(7, 48, 120))
        process.wait_for_log(r'Image frame dropped: the frame is 120x48 pixels, larger than '
                             r'max_image_size=100 per side', start=log_start)
        _, reply = client.ask('Anything?')
        assert client.history_texts()[1:] == [('user', 'text', 'Anything?'),
                                              ('bot', 'text', reply)]
    finally:
        assert client.set_params(max_image_size=4096)[0].successful

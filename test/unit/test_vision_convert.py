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
"""Every image input form gives the same HWC uint8 RGB pixels; bad inputs give ValueError."""

import functools
import http.server
import io
import os
import socket
import threading

import numpy as np
from PIL import Image
import pytest
from ros2_nano_llm.vision import describe, is_image, SUPPORTED_ENCODINGS, to_rgb_array
import torch

sensor_msgs = pytest.importorskip('sensor_msgs.msg')

H, W = 6, 8


@pytest.fixture(scope='module')
def rgb():
    """Return a random (H, W, 3) uint8 RGB image: exact comparisons catch any channel mix-up."""
    return np.random.RandomState(0).randint(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def smooth():
    """Return a smooth 32x48 image (JPEG keeps smooth images close to the original)."""
    y, x = np.mgrid[0:32, 0:48]
    return np.stack([x * 5, y * 7, 255 - x * 5], axis=2).astype(np.uint8)


def ros_image(arr, encoding, pad=0, bigendian=False):
    """Build a real rclpy sensor_msgs/Image from an (H, W, C) array, with ``pad`` junk bytes."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    height, width = arr.shape[:2]
    if arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder('>' if bigendian else '<'))
    rows = arr.reshape(height, -1).view(np.uint8)
    padded = np.full((height, rows.shape[1] + pad), 0xAB, dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = sensor_msgs.Image()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian = int(bigendian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


def compressed(data, fmt):
    """Build a real rclpy sensor_msgs/CompressedImage."""
    msg = sensor_msgs.CompressedImage()
    msg.format = fmt
    msg.data = data
    return msg


def encode(arr, fmt, **kw):
    """Encode an RGB array with PIL; return the bytes."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def check(out, expected):
    """Assert ``out`` is a fresh contiguous HWC uint8 RGB array equal to ``expected``."""
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3
    assert out.flags['C_CONTIGUOUS'] and out.flags['OWNDATA']
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------- arrays, tensors, PIL


def test_numpy_forms(rgb):
    check(to_rgb_array(rgb), rgb)
    check(to_rgb_array(rgb[:, :, ::-1].copy(), channels='bgr'), rgb)
    alpha = np.random.RandomState(1).randint(0, 256, (H, W, 1), dtype=np.uint8)
    check(to_rgb_array(np.concatenate([rgb, alpha], axis=2)), rgb)
    check(to_rgb_array(rgb.astype(np.float32) / 255.0), rgb)
    check(to_rgb_array(rgb.astype(np.int64)), rgb)
    gray = rgb[:, :, 0]
    check(to_rgb_array(gray), np.repeat(gray[:, :, None], 3, axis=2))
    check(to_rgb_array(gray[:, :, None]), np.repeat(gray[:, :, None], 3, axis=2))
    check(to_rgb_array(gray.astype(np.uint16) * 257), np.repeat(gray[:, :, None], 3, axis=2))


def test_numpy_output_is_a_copy(rgb):
    src = rgb.copy()
    out = to_rgb_array(src)
    src[:] = 0
    check(out, rgb)


def test_torch_forms(rgb):
    chw = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    check(to_rgb_array(chw), rgb)
    check(to_rgb_array(torch.from_numpy(rgb)), rgb)
    check(to_rgb_array(chw[None]), rgb)
    check(to_rgb_array(chw.float() / 255.0), rgb)
    check(to_rgb_array(chw.double().div(255.0).requires_grad_()), rgb)
    check(to_rgb_array(chw.flip(0), channels='bgr'), rgb)


def test_pil_forms(rgb):
    check(to_rgb_array(Image.fromarray(rgb)), rgb)
    check(to_rgb_array(Image.fromarray(rgb).convert('RGBA')), rgb)
    gray = Image.fromarray(rgb).convert('L')
    check(to_rgb_array(gray), np.repeat(np.asarray(gray)[:, :, None], 3, axis=2))
    palette = Image.fromarray(rgb).convert('P')
    check(to_rgb_array(palette), np.asarray(palette.convert('RGB')))


@pytest.mark.parametrize('bad, words', [
    (np.full((4, 4, 3), 1.5, dtype=np.float32), '[0, 1]'),
    (np.full((4, 4, 3), np.nan, dtype=np.float32), 'NaN'),
    (np.full((4, 4, 3), 300, dtype=np.int32), '0..255'),
    (np.zeros((4, 4, 2), dtype=np.uint8), 'channels'),
    (np.zeros((2, 4, 4, 3), dtype=np.uint8), 'shape'),
    (np.zeros((0, 4, 3), dtype=np.uint8), 'empty'),
    ([1, 2, 3], 'unsupported image type'),
])
def test_bad_arrays(bad, words):
    with pytest.raises(ValueError) as err:
        to_rgb_array(bad)
    assert words in str(err.value)


# ---------------------------------------------------------------- files, bytes, URLs


@pytest.mark.parametrize('ext', ['png', 'bmp', 'tiff', 'ppm'])
def test_lossless_files(tmp_path, rgb, ext):
    path = tmp_path / f'img.{ext}'
    Image.fromarray(rgb).save(path)
    check(to_rgb_array(str(path)), rgb)
    check(to_rgb_array(path), rgb)  # os.PathLike
    check(to_rgb_array(f'file://{path}'), rgb)


def test_jpeg_file_bytes_and_message_agree(tmp_path, smooth):
    data = encode(smooth, 'JPEG', quality=95)
    path = tmp_path / 'img.jpg'
    path.write_bytes(data)
    from_file = to_rgb_array(str(path))
    assert np.abs(from_file.astype(int) - smooth).mean() < 3
    check(to_rgb_array(data), from_file)  # the same decoder for every route
    check(to_rgb_array(compressed(data, 'jpeg')), from_file)
    check(to_rgb_array(compressed(data, 'rgb8; jpeg compressed bgr8')), from_file)


def test_grayscale_png_file(tmp_path, rgb):
    path = tmp_path / 'gray.png'
    Image.fromarray(rgb[:, :, 1]).save(path)
    check(to_rgb_array(str(path)), np.repeat(rgb[:, :, 1:2], 3, axis=2))


def test_bad_files(tmp_path, rgb):
    with pytest.raises(ValueError, match='not found'):
        to_rgb_array(str(tmp_path / 'missing.jpg'))
    with pytest.raises(ValueError, match='directory'):
        to_rgb_array(str(tmp_path))
    text = tmp_path / 'notes.png'
    text.write_text('this is not an image')
    with pytest.raises(ValueError, match='cannot decode'):
        to_rgb_array(str(text))
    truncated = tmp_path / 'truncated.png'
    truncated.write_bytes(encode(rgb, 'PNG')[:60])
    with pytest.raises(ValueError, match='corrupt'):
        to_rgb_array(str(truncated))


@pytest.fixture
def http_dir(tmp_path):
    """Serve ``tmp_path`` over http on localhost; yield the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.HTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url(tmp_path, http_dir, rgb):
    Image.fromarray(rgb).save(tmp_path / 'cat.png')
    check(to_rgb_array(f'{http_dir}/cat.png'), rgb)
    with pytest.raises(ValueError, match='cannot fetch image URL'):
        to_rgb_array(f'{http_dir}/missing.png')  # 404


def test_offline_url():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with pytest.raises(ValueError) as err:
        to_rgb_array(f'http://127.0.0.1:{port}/cat.jpg')
    assert 'cannot fetch image URL' in str(err.value) and 'local file' in str(err.value)


# ---------------------------------------------------------------- sensor_msgs/Image


@pytest.mark.parametrize('pad', [0, 5])
def test_ros_color_encodings(rgb, pad):
    alpha = np.full((H, W, 1), 7, dtype=np.uint8)
    check(to_rgb_array(ros_image(rgb, 'rgb8', pad)), rgb)
    check(to_rgb_array(ros_image(rgb[:, :, ::-1], 'bgr8', pad)), rgb)
    check(to_rgb_array(ros_image(np.concatenate([rgb, alpha], 2), 'rgba8', pad)), rgb)
    check(to_rgb_array(ros_image(np.concatenate([rgb[:, :, ::-1], alpha], 2), 'bgra8', pad)), rgb)
    check(to_rgb_array(ros_image(rgb[:, :, ::-1], '8UC3', pad)), rgb)  # cv_bridge: 8UC3 is BGR


@pytest.mark.parametrize('pad', [0, 3])
def test_ros_mono_encodings(rgb, pad):
    gray = rgb[:, :, 0]
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    check(to_rgb_array(ros_image(gray, 'mono8', pad)), expected)
    check(to_rgb_array(ros_image(gray, '8UC1', pad)), expected)
    wide = gray.astype(np.uint16) * 257  # 16-bit full scale maps back exactly
    for bigendian in (False, True):
        check(to_rgb_array(ros_image(wide, 'mono16', pad, bigendian)), expected)
        check(to_rgb_array(ros_image(wide, '16UC1', pad, bigendian)), expected)
    check(to_rgb_array(ros_image(np.full((2, 2), 65535, np.uint16), 'mono16')),
          np.full((2, 2, 3), 255, np.uint8))


def test_ros_rgb16(rgb):
    check(to_rgb_array(ros_image(rgb.astype(np.uint16) * 257, 'rgb16', 2, True)), rgb)


def test_ros_depth_float():
    depth = np.array([[0.5, 1.0], [2.0, np.nan]], dtype=np.float32)
    out = to_rgb_array(ros_image(depth, '32FC1'))
    np.testing.assert_array_equal(out[:, :, 0], [[0, 85], [255, 0]])


def _yuv(rgb):
    """BT.601 limited-range Y, Cb, Cr of an RGB array (the camera convention)."""
    r, g, b = (rgb[..., i].astype(np.float64) / 255.0 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return [np.clip(np.rint(c), 0, 255).astype(np.uint8) for c in (y, cb, cr)]


@pytest.mark.parametrize('pad', [0, 4])
def test_ros_yuv422(rgb, pad):
    pairs = np.repeat(rgb[:, ::2], 2, axis=1)  # 4:2:2 shares colour between pixel pairs
    y, cb, cr = _yuv(pairs)
    chroma = np.empty((H, W), np.uint8)
    chroma[:, 0::2], chroma[:, 1::2] = cb[:, 0::2], cr[:, 0::2]
    uyvy = np.stack([chroma, y], axis=2)  # U Y0 V Y1
    yuyv = np.stack([y, chroma], axis=2)  # Y0 U Y1 V
    out = to_rgb_array(ros_image(uyvy, 'yuv422', pad))
    assert out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - pairs).max() <= 3
    check(to_rgb_array(ros_image(uyvy, 'uyvy', pad)), out)
    check(to_rgb_array(ros_image(yuyv, 'yuv422_yuy2', pad)), out)


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
def test_ros_bayer(pattern):
    colour = {'r': 200, 'g': 120, 'b': 30}
    tile = np.array([[colour[pattern[0]], colour[pattern[1]]],
                     [colour[pattern[2]], colour[pattern[3]]]], dtype=np.uint8)
    mosaic = np.tile(tile, (4, 4))  # a flat colour demosaics to itself
    out = to_rgb_array(ros_image(mosaic, f'bayer_{pattern}8'))
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.full((4, 4, 3), [200, 120, 30]))
    out16 = to_rgb_array(ros_image(mosaic.astype(np.uint16) * 257, f'bayer_{pattern}16'))
    check(out16, out)


def test_ros_bad_messages(rgb):
    msg = ros_image(rgb, 'rgb8')
    msg.step = W * 3 - 1
    with pytest.raises(ValueError, match='step 23 is smaller than one row'):
        to_rgb_array(msg)
    msg = ros_image(rgb, 'rgb8')
    msg.height = H + 1
    with pytest.raises(ValueError, match=f'data has {H * W * 3} bytes but step'):
        to_rgb_array(msg)
    msg = ros_image(rgb, 'rgb8')
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match='bytes but step'):
        to_rgb_array(msg)
    msg = ros_image(rgb, 'rgb8')
    msg.encoding = 'hsv8'
    with pytest.raises(ValueError) as err:
        to_rgb_array(msg)
    assert "'hsv8'" in str(err.value) and 'rgb8' in str(err.value) and 'yuv422' in str(err.value)
    with pytest.raises(ValueError, match='even width'):
        to_rgb_array(ros_image(np.zeros((2, 3, 2), np.uint8), 'yuv422'))
    empty = sensor_msgs.Image()
    empty.encoding = 'rgb8'
    with pytest.raises(ValueError, match='empty'):
        to_rgb_array(empty)


# ---------------------------------------------------------------- sensor_msgs/CompressedImage


def test_ros_compressed_png(rgb):
    check(to_rgb_array(compressed(encode(rgb, 'PNG'), 'png')), rgb)
    check(to_rgb_array(compressed(encode(rgb, 'PNG'), 'bgr8; png compressed bgr8')), rgb)


def test_ros_compressed_jpeg(smooth):
    out = to_rgb_array(compressed(encode(smooth, 'JPEG', quality=95), 'jpeg'))
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).mean() < 3


def test_ros_compressed_depth_png():
    depth = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 257 * 20)
    png = encode(depth, 'PNG')
    out = to_rgb_array(compressed(b'\0' * 12 + png, '16UC1; compressedDepth png'))
    np.testing.assert_array_equal(out[:, :, 0], np.arange(12).reshape(3, 4) * 20)


def test_ros_compressed_corrupt(smooth):
    jpeg = encode(smooth, 'JPEG')
    for data in (b'\xff\xd8\xff\xe0garbage' * 10, jpeg[:len(jpeg) // 2], b''):
        with pytest.raises(ValueError) as err:
            to_rgb_array(compressed(data, 'jpeg'))
        assert 'CompressedImage' in str(err.value)


# ---------------------------------------------------------------- is_image, describe


def test_is_image_and_describe(rgb, tmp_path):
    assert is_image(rgb) and is_image(torch.zeros(3, 4, 4)) and is_image(Image.fromarray(rgb))
    assert is_image('photos/cat.JPG') and is_image('https://x.org/a.png?s=1')
    assert is_image(ros_image(rgb, 'rgb8')) and is_image(compressed(b'', 'jpeg'))
    assert not is_image('what is in the picture?') and not is_image(np.zeros(3))
    assert not is_image(42) and not is_image(None)
    assert describe(rgb) == f'<image {W}x{H}>'
    assert describe(torch.zeros(3, 4, 5)) == '<image 5x4>'
    assert describe(Image.fromarray(rgb)) == f'<image {W}x{H}>'
    assert describe(ros_image(rgb, 'bgr8')) == f'<image {W}x{H} bgr8>'
    assert describe(compressed(encode(rgb, 'PNG'), 'png')) == f'<image {W}x{H} png>'
    assert describe(os.path.join(str(tmp_path), 'cat.jpg')) == '<image cat.jpg>'
    assert describe(object()) == '<image object>'


def test_supported_encodings_listed():
    for name in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '16UC1', 'yuv422',
                 'yuv422_yuy2', 'bayer_rggb8'):
        assert name in SUPPORTED_ENCODINGS


# ---------------------------------------------------------------- size bounds (issue 11 item 7)


def test_declared_size_reads_headers_without_decoding():
    from ros2_nano_llm.vision.convert import declared_size
    msg = sensor_msgs.Image(width=100000, height=7, encoding='rgb8', step=300000)
    assert declared_size(msg) == (100000, 7)  # no data at all: only the fields are read
    out = io.BytesIO()
    Image.new('RGB', (640, 20)).save(out, format='PNG')
    data = out.getvalue()
    assert declared_size(data) == (640, 20)
    assert declared_size(sensor_msgs.CompressedImage(format='png', data=data)) == (640, 20)
    assert declared_size(np.zeros((5, 9, 3), np.uint8)) == (9, 5)
    assert declared_size(b'not an image') is None


def test_check_frame_size_refuses_a_frame_larger_than_the_bound():
    from ros2_nano_llm.vision.convert import check_frame_size
    msg = sensor_msgs.Image(width=8000, height=8000, encoding='rgb8', step=24000)
    with pytest.raises(ValueError, match='the frame is 8000x8000 pixels, larger than '
                                         'max_image_size=4096 per side'):
        check_frame_size(msg, 4096)
    check_frame_size(sensor_msgs.Image(width=4096, height=10, encoding='rgb8'), 4096)


def test_shrink_to_scales_the_shorter_side_and_keeps_the_aspect():
    from ros2_nano_llm.vision.convert import shrink_to
    rgb = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    small = shrink_to(rgb, 64)
    assert small.shape == (64, 96, 3) and small.dtype == np.uint8
    assert shrink_to(rgb, 200) is rgb and shrink_to(rgb, 0) is rgb

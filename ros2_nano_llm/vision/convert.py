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
Turn any supported image input into one HWC uint8 RGB numpy array.

Inputs: numpy arrays, torch tensors, PIL images, file paths, encoded bytes, http(s)
URLs, and ROS ``sensor_msgs/Image`` / ``CompressedImage`` messages. ROS messages are
recognised by their fields (duck typing), so this module never imports rclpy and also
accepts rosbags' message classes. Every unreadable input raises ``ValueError``.
"""

import io
import os
import sys
from typing import Any, Optional, Tuple
import urllib.error
import urllib.request

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm',
                    '.pgm', '.pnm')
URL_TIMEOUT_S = 5.0
MAX_URL_BYTES = 64 * 1024 * 1024

# ROS encoding -> (bytes per channel, channels); the 16-bit ones are scaled to 8 bits.
_RAW_ENCODINGS = {
    'rgb8': (1, 3), 'bgr8': (1, 3), 'rgba8': (1, 4), 'bgra8': (1, 4), 'mono8': (1, 1),
    'rgb16': (2, 3), 'bgr16': (2, 3), 'rgba16': (2, 4), 'bgra16': (2, 4), 'mono16': (2, 1),
    '8UC1': (1, 1), '8UC3': (1, 3), '8UC4': (1, 4), '16UC1': (2, 1), '32FC1': (4, 1),
    'yuv422': (1, 2), 'uyvy': (1, 2), 'yuv422_yuy2': (1, 2), 'yuyv': (1, 2),
    'bayer_rggb8': (1, 1), 'bayer_bggr8': (1, 1), 'bayer_gbrg8': (1, 1), 'bayer_grbg8': (1, 1),
    'bayer_rggb16': (2, 1), 'bayer_bggr16': (2, 1), 'bayer_gbrg16': (2, 1),
    'bayer_grbg16': (2, 1),
}
# OpenCV-style generic encodings -> the named encoding they are read as (cv_bridge's convention).
_GENERIC_ALIASES = {'8UC1': 'mono8', '8UC3': 'bgr8', '8UC4': 'bgra8', '16UC1': 'mono16'}
SUPPORTED_ENCODINGS = tuple(sorted(_RAW_ENCODINGS))


def to_rgb_array(image: Any, channels: str = 'rgb') -> np.ndarray:
    """
    Return ``image`` as a contiguous (H, W, 3) uint8 RGB array (always a new array).

    ``image`` is a numpy array (HWC, HW or CHW; uint8, uint16, bool, other integers in
    0..255, or floats in [0, 1]), a torch tensor (CHW, HWC or 1xCxHxW), a PIL image, a
    file path (``str`` or ``os.PathLike``), encoded image bytes, an http(s) URL, or a ROS
    ``sensor_msgs/Image`` or ``CompressedImage``. ``channels`` is the colour order of
    3/4-channel arrays and tensors, ``'rgb'`` or ``'bgr'`` (OpenCV); self-describing inputs
    (files, PIL, ROS messages) ignore it. Alpha is dropped, gray is repeated to RGB.
    Raises ValueError when the input is not an image, cannot be read, or is corrupt.
    """
    if channels not in ('rgb', 'bgr'):
        raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    if isinstance(image, np.ndarray):
        return _from_array(image, channels, chw_first=False)
    if _is_torch_tensor(image):
        return _from_array(_tensor_to_numpy(image), channels, chw_first=True)
    if isinstance(image, PILImage.Image):
        return _from_pil(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(image), 'image bytes')
    if isinstance(image, (str, os.PathLike)):
        return _from_location(os.fspath(image))
    if _is_ros_image(image):
        return _from_ros_image(image)
    if _is_ros_compressed(image):
        return _from_ros_compressed(image)
    if hasattr(image, '__cuda_array_interface__'):
        # e.g. jetson_utils.cudaImage: read it through torch (needs CUDA)
        import torch
        return _from_array(_tensor_to_numpy(torch.as_tensor(image, device='cuda')), channels,
                           chw_first=False)
    if hasattr(image, '__array_interface__') or hasattr(image, '__array__'):
        return _from_array(np.asarray(image), channels, chw_first=False)
    raise ValueError(
        f'unsupported image type {type(image).__name__}: pass a numpy array, torch tensor, '
        'PIL image, file path, URL, or sensor_msgs/Image or CompressedImage')


def declared_size(image: Any) -> Optional[Tuple[int, int]]:
    """
    Return ``(width, height)`` of an image as it declares it, without decoding its pixels.

    ROS ``Image`` messages by their fields, encoded bytes and ``CompressedImage`` by their
    header (read by PIL), arrays by their shape. None when it cannot be told cheaply.
    """
    if _is_ros_image(image):
        return int(image.width), int(image.height)
    if isinstance(image, PILImage.Image):
        return image.size
    if isinstance(image, np.ndarray) and image.ndim in (2, 3, 4):
        height, width = _array_hw(tuple(int(s) for s in image.shape), chw_first=False)
        return int(width), int(height)
    data = None
    if _is_ros_compressed(image):
        data = _compressed_payload(image)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    if not data:
        return None
    try:
        with PILImage.open(io.BytesIO(data)) as img:  # reads the header only
            return img.size
    except PILImage.DecompressionBombError as err:
        raise ValueError(f'the image declares a size PIL refuses to decode ({err})') from err
    except Exception:  # noqa: B902 - not readable: decoding says why later
        return None


def check_frame_size(image: Any, max_size: int) -> None:
    """Raise ValueError when ``image`` declares a width or height above ``max_size`` pixels."""
    size = declared_size(image)
    if size is not None and max(size) > max_size:
        raise ValueError(f'the frame is {size[0]}x{size[1]} pixels, larger than '
                         f'max_image_size={max_size} per side; send smaller frames (or raise '
                         'max_image_size)')


def shrink_to(rgb: np.ndarray, side: int) -> np.ndarray:
    """
    Scale an (H, W, 3) array down so that its shorter side is ``side`` pixels.

    Returned as is when it is that small already (or ``side`` is 0). The aspect ratio is
    kept; image processors resize by the shorter side, so nothing they use is lost.
    """
    height, width = rgb.shape[:2]
    if side <= 0 or min(height, width) <= side:
        return rgb
    scale = side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(PILImage.fromarray(rgb).resize(size, PILImage.Resampling.BICUBIC))


def is_image(obj: Any) -> bool:
    """
    Return True when ``obj`` looks like an image input (cheap: no file or network I/O).

    Strings and paths count when they end in an image extension (``.jpg``, ``.png``, ...),
    URLs too (query strings ignored); arrays and tensors when they have 2-4 dimensions.
    """
    if isinstance(obj, np.ndarray):
        return obj.ndim in (2, 3) and obj.size > 0
    if _is_torch_tensor(obj):
        return obj.dim() in (2, 3, 4) and obj.numel() > 0
    if isinstance(obj, PILImage.Image):
        return True
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not isinstance(path, str):
            return False
        path = path.strip().split('?')[0].split('#')[0].lower()
        return path.endswith(IMAGE_EXTENSIONS)
    return _is_ros_image(obj) or _is_ros_compressed(obj)


def describe(image: Any) -> str:
    """
    Return a short text for ``image`` such as ``'<image 640x480>'`` (width x height).

    Files and URLs are named by their file name instead (they are not opened here).
    """
    try:
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            name = path if _is_url(path) else os.path.basename(path)
            return f'<image {name}>'
        if isinstance(image, np.ndarray) or _is_torch_tensor(image):
            shape = tuple(int(s) for s in image.shape)
            height, width = _array_hw(shape, chw_first=_is_torch_tensor(image))
            return f'<image {width}x{height}>'
        if isinstance(image, PILImage.Image):
            return f'<image {image.width}x{image.height}>'
        if _is_ros_image(image):
            return f'<image {int(image.width)}x{int(image.height)} {image.encoding}>'
        if _is_ros_compressed(image):
            with PILImage.open(io.BytesIO(bytes(image.data))) as img:
                return f'<image {img.width}x{img.height} {image.format or img.format}>'
    except Exception:  # noqa: B902 - describing must never fail; fall through
        pass
    return f'<image {type(image).__name__}>'


# ---------------------------------------------------------------- arrays and tensors


def _is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get('torch')
    return torch is not None and isinstance(obj, torch.Tensor)


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in _numpy_float_dtypes():
        tensor = tensor.float()  # bfloat16 and friends have no numpy dtype
    return tensor.numpy()


def _numpy_float_dtypes() -> tuple:
    import torch
    return (torch.float16, torch.float32, torch.float64)


def _array_hw(shape: Tuple[int, ...], chw_first: bool) -> Tuple[int, int]:
    """Return (height, width) of an image array shape; see ``_to_hwc``."""
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 3:
        return shape[1:] if _is_chw(shape, chw_first) else shape[:2]
    raise ValueError(f'an image array must be HxW, HxWxC or CxHxW, got shape {shape}')


def _is_chw(shape: Tuple[int, ...], chw_first: bool) -> bool:
    chw = shape[0] in (1, 3, 4)
    hwc = shape[2] in (1, 2, 3, 4)  # 2 is never valid, but HWC is the likelier mistake
    if chw and hwc:
        return chw_first  # ambiguous (e.g. 3x4x3): torch means CHW, numpy means HWC
    return chw


def _to_hwc(arr: np.ndarray, chw_first: bool) -> np.ndarray:
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        if _is_chw(arr.shape, chw_first):
            arr = arr.transpose(1, 2, 0)
    else:
        raise ValueError(f'an image array must be HxW, HxWxC or CxHxW, got shape {arr.shape}')
    if arr.shape[2] not in (1, 3, 4):
        raise ValueError(f'an image needs 1, 3 or 4 channels, got shape {arr.shape}')
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f'the image is empty (shape {arr.shape})')
    return arr


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return _scale16(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError('the float image holds NaN or infinite values')
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f'float images must hold values in [0, 1], got [{lo:g}, {hi:g}]; '
                             'pass uint8 for values in 0..255')
        return np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(f'integer images ({arr.dtype}) must hold values in 0..255, got '
                             f'{lo}..{hi}; pass uint16 for 16-bit images')
        return arr.astype(np.uint8)
    raise ValueError(f'unsupported image dtype {arr.dtype}')


def _scale16(arr: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 with rounding (x / 257)."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _channels_to_rgb(arr: np.ndarray, channels: str) -> np.ndarray:
    """(H, W, 1|3|4) uint8 -> (H, W, 3) uint8 RGB; alpha is dropped."""
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    arr = arr[:, :, :3]
    if channels == 'bgr':
        arr = arr[:, :, ::-1]
    return arr


def _from_array(arr: np.ndarray, channels: str, chw_first: bool) -> np.ndarray:
    arr = _to_uint8(_to_hwc(np.asarray(arr), chw_first))
    return np.ascontiguousarray(_channels_to_rgb(arr, channels)).copy()


# ---------------------------------------------------------------- PIL, files, bytes, URLs


def _from_pil(img: PILImage.Image) -> np.ndarray:
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(f'unsupported {img.mode} image with values outside 0..65535')
        return _from_array(_scale16(arr.astype(np.uint32)), 'rgb', chw_first=False)
    if img.mode == 'F':
        return _from_array(np.asarray(img), 'rgb', chw_first=False)
    if img.mode == 'L':
        return _from_array(np.asarray(img), 'rgb', chw_first=False)
    if img.mode != 'RGB':
        img = img.convert('RGB')  # P, RGBA, LA, CMYK, YCbCr, 1 ...; alpha is dropped
    return np.array(img, dtype=np.uint8)


def _decode_bytes(data: bytes, what: str) -> np.ndarray:
    """Decode encoded image bytes (jpeg, png, bmp, ...) with PIL; corrupt -> ValueError."""
    if not data:
        raise ValueError(f'{what}: no image data (0 bytes)')
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _from_pil(img)
    except ValueError:
        raise
    except (OSError, SyntaxError, PILImage.DecompressionBombError) as err:
        raise ValueError(f'{what}: cannot decode the image data ({err}); it is corrupt or '
                         'not an image format PIL can read') from err


def _is_url(text: str) -> bool:
    return text.lower().startswith(('http://', 'https://'))


def _from_location(text: str) -> np.ndarray:
    if _is_url(text):
        return _decode_bytes(_fetch_url(text), f'image URL {text}')
    if text.lower().startswith('file://'):
        text = urllib.request.url2pathname(text[len('file://'):])
    path = os.path.expanduser(text)
    if not os.path.exists(path):
        raise ValueError(f'image file not found: {text!r}')
    if os.path.isdir(path):
        raise ValueError(f'{text!r} is a directory, not an image file')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ValueError(f'cannot read image file {text!r}: {err}') from err
    return _decode_bytes(data, f'image file {text!r}')


def _fetch_url(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:  # noqa: S310
            data = resp.read(MAX_URL_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, 'reason', err)
        raise ValueError(f'cannot fetch image URL {url} here ({reason}); download the image '
                         'where there is network and pass a local file path instead') from err
    if len(data) > MAX_URL_BYTES:
        raise ValueError(f'image URL {url} is larger than {MAX_URL_BYTES} bytes')
    return data


# ---------------------------------------------------------------- ROS messages


def _is_ros_image(obj: Any) -> bool:
    return all(hasattr(obj, f) for f in ('encoding', 'height', 'width', 'step', 'data'))


def _is_ros_compressed(obj: Any) -> bool:
    return (hasattr(obj, 'format') and hasattr(obj, 'data')
            and not isinstance(obj, PILImage.Image) and not hasattr(obj, 'encoding'))


def _msg_bytes(msg: Any) -> np.ndarray:
    data = msg.data
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)


def _from_ros_image(msg: Any) -> np.ndarray:
    """Validate size and step, drop row padding, then convert colour with rosbags-image."""
    encoding = str(msg.encoding).strip()
    if encoding not in _RAW_ENCODINGS:
        raise ValueError(f'unsupported sensor_msgs/Image encoding {encoding!r}; supported: '
                         + ', '.join(SUPPORTED_ENCODINGS))
    depth, nchan = _RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f'sensor_msgs/Image is empty ({width}x{height})')
    if nchan == 2 and width % 2:
        raise ValueError(f'{encoding} images need an even width, got {width}')
    row = width * depth * nchan
    if step < row:
        raise ValueError(f'sensor_msgs/Image step {step} is smaller than one row: width {width} '
                         f'x {depth * nchan} bytes per pixel ({encoding}) = {row}')
    data = _msg_bytes(msg)
    if data.size != step * height:
        raise ValueError(f'sensor_msgs/Image data has {data.size} bytes but step {step} x '
                         f'height {height} = {step * height}')
    rows = data.reshape(height, step)[:, :row]
    if depth == 1:
        img = np.ascontiguousarray(rows).reshape(height, width, nchan)
    else:
        kind = 'f' if encoding == '32FC1' else 'u'
        dtype = np.dtype(f'{">" if msg.is_bigendian else "<"}{kind}{depth}')
        img = np.ascontiguousarray(rows).view(dtype).reshape(height, width, nchan)
        img = img.astype(dtype.newbyteorder('='))
    return _convert_encoding(img, encoding)


def _convert_encoding(img: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, C) array in ``encoding`` -> (H, W, 3) uint8 RGB."""
    if encoding == '32FC1':
        return _from_array(_normalize_float(img[:, :, 0]), 'rgb', chw_first=False)
    encoding = _GENERIC_ALIASES.get(encoding, encoding)
    if img.dtype == np.uint16:
        img = _scale16(img)
        encoding = encoding.replace('16', '8')
    if encoding in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'):
        return _from_array(img, 'bgr' if encoding.startswith('bgr') else 'rgb', chw_first=False)
    # YUV 4:2:2 and Bayer need demosaicing / colour conversion: rosbags-image (OpenCV).
    from rosbags.image.image import convert_color
    src = img if img.shape[2] == 2 else img[:, :, 0]
    try:
        out = convert_color(np.ascontiguousarray(src), encoding, 'rgb8')
    except Exception as err:  # noqa: B902 - cv2.error and rosbags' ImageError
        raise ValueError(f'cannot convert {encoding} image to rgb8: {err}') from err
    return np.ascontiguousarray(out, dtype=np.uint8)


def _normalize_float(arr: np.ndarray) -> np.ndarray:
    """Float (depth) image -> [0, 1]: as is when already in [0, 1], else min..max of finite."""
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, dtype=np.float64)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    out = np.where(finite, arr, lo)
    if lo >= 0.0 and hi <= 1.0:
        return out
    return (out - lo) / (hi - lo) if hi > lo else np.zeros(arr.shape, dtype=np.float64)


def _compressed_payload(msg: Any) -> bytes:
    # the encoded image of a sensor_msgs/CompressedImage
    data = _msg_bytes(msg).tobytes()
    if 'compresseddepth' in str(msg.format or '').lower().replace(' ', ''):
        data = data[12:]  # compressed_depth_image_transport prefixes a 12-byte config header
    return data


def _from_ros_compressed(msg: Any) -> np.ndarray:
    return _decode_bytes(_compressed_payload(msg),
                         f'sensor_msgs/CompressedImage (format {str(msg.format or "")!r})')

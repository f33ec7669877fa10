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
The node's camera input: frames checked by their declared size before they are copied.

The image subscriptions take the serialized message (``raw=True``): ``Camera.take()`` reads
an ``Image``'s width and height from its CDR header (``declared_size``) and drops a frame
above ``max_image_size`` before rclpy builds the message, so a huge frame is never copied
into Python objects or numpy arrays. A frame that passes is converted to RGB, shrunk to what
the image encoder can use and kept as the newest (``LatestFrame``) for the next prompt.
"""

import struct
import time
from typing import Any, Optional, Tuple

from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from . import interfaces as ifc
from .worker import LatestFrame
from ..vision.convert import shrink_to

KEEP_FRAME_FACTOR = 2  # frames are kept at most this many times the encoder's input side
BYTES_PER_PIXEL = 8    # the most any encoding takes (rgba16): a bound for encoded frames


def declared_size(raw: bytes) -> Optional[Tuple[int, int]]:
    """
    Return ``(width, height)`` from a serialized ``sensor_msgs/Image``, or None if unreadable.

    CDR: a 4-byte encapsulation header (byte 1 odd: little endian), then the header's stamp
    (two 32-bit ints) and frame_id (a 32-bit length and its bytes), padded to 4, then
    ``height`` and ``width``.
    """
    if len(raw) < 20:
        return None
    order = '<' if raw[1] & 1 else '>'
    (name_len,) = struct.unpack_from(order + 'I', raw, 12)
    offset = 16 + name_len
    offset += -(offset - 4) % 4  # aligned from the start of the data
    if offset + 8 > len(raw):
        return None
    height, width = struct.unpack_from(order + 'II', raw, offset)
    return int(width), int(height)


class Camera:
    """The camera frames of one node: checked, converted, shrunk; the newest kept."""

    def __init__(self, logger: Any, incidents: Any):
        self.frames = LatestFrame()
        self.side = 0  # frames are shrunk to this (0: as they are); set at configure
        self._logger = logger
        self._incidents = incidents
        self._noted = False  # the "no vision" note was logged

    def configure(self, encoder_side: int) -> None:
        """Shrink frames for an encoder that works at ``encoder_side`` pixels (0: unknown)."""
        self.side, self._noted = KEEP_FRAME_FACTOR * encoder_side, False

    def take(self, raw: bytes, msg_type: Any, model: Any, config: Any) -> None:
        """Check, convert and keep one serialized frame for the next prompt of ``model``."""
        if not model.has_vision:
            if not self._noted:
                self._noted = True
                self._logger.warning(
                    f"'{model.name}' has no vision: images are ignored and the chat goes on in "
                    'text (configure a vision model to use the camera)')
            return
        side = int(config.max_image_size)
        try:
            size = declared_size(raw) if msg_type is Image else None
            if size is not None and max(size) > side:
                raise ValueError(f'the frame is {size[0]}x{size[1]} pixels, larger than '
                                 f'max_image_size={side} per side; send smaller frames (or '
                                 'raise max_image_size)')
            if len(raw) > side * side * BYTES_PER_PIXEL + (1 << 16):
                raise ValueError(f'the frame has {len(raw)} bytes, more than a frame of '
                                 f'max_image_size={side} per side can have')
            # the declared size is checked again, and before any decoding
            image = ifc.frame_to_rgb(deserialize_message(raw, msg_type), max_size=side)
        except ValueError as error:
            text = f'{msg_type.__name__} frame dropped: {error}'
            self._incidents.dropped('frames', text[:120], text)
            return
        # keep no more pixels than the encoder can use (a 4K frame would be held in full)
        self.frames.put(shrink_to(image, self.side), time.monotonic())

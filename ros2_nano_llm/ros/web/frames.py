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
"""Camera frames for the page: any sensor_msgs/Image or CompressedImage -> a small JPEG."""

import io
from typing import Any, Tuple

from PIL import Image as PILImage

from ...vision.convert import check_frame_size, shrink_to, to_rgb_array

JPEG_QUALITY = 75


def small_jpeg(msg: Any, side: int, max_size: int) -> Tuple[bytes, int, int]:
    """
    Return ``(jpeg, width, height)`` of a frame scaled down to ``side`` on its shorter side.

    Raises ValueError for a frame larger than ``max_size`` per side (before decoding it) or
    one that cannot be read.
    """
    check_frame_size(msg, max_size)
    rgb = shrink_to(to_rgb_array(msg), side)  # (H, W, 3) uint8
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format='JPEG', quality=JPEG_QUALITY)
    return out.getvalue(), int(rgb.shape[1]), int(rgb.shape[0])

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
Hand the memory a cleanup freed back to the system (glibc's ``malloc_trim``).

glibc keeps freed memory in its arenas for reuse: a model load and free at each
configure/cleanup cycle left tens of MiB resident (issue 21 item 17). Where the C library has
no ``malloc_trim`` (musl, macOS) this does nothing.
"""

import ctypes
import ctypes.util
import gc


def release_freed_memory() -> bool:
    """Free unreachable cycles, then return freed heap memory; True if ``malloc_trim`` ran."""
    gc.collect()  # the model's objects in reference cycles, now rather than at some later gc
    try:
        trim = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').malloc_trim
    except (OSError, AttributeError):  # no C library by that name, or one without malloc_trim
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True

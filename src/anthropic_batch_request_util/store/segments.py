"""Many small byte strings kept as one blob: the strings joined, and each one's end offset.

A million request bodies or result lines stored one row each cost a million row writes
and reads; stored a few thousand to a blob, they cost a few hundred, and a blob already
joined the way it is sent or written is used as it is.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

__all__ = ["SEGMENT_MAX_BYTES", "pack", "span", "uint32s", "unpack_uint32s"]

SEGMENT_MAX_BYTES = 1 << 20  #: bytes of bodies or lines per segment (one item may exceed it)

_LITTLE = array("I", [1]).tobytes()[0] == 1


def uint32s(values: Sequence[int] | array[int]) -> bytes:
    """Unsigned 32-bit integers as little-endian bytes, whatever the machine's order, so a
    store can move between machines."""
    packed = array("I", values)
    if packed.itemsize != 4:
        raise RuntimeError("array('I') is not 4 bytes wide on this platform")
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def unpack_uint32s(raw: bytes) -> array[int]:
    values = array("I")
    values.frombytes(raw)
    if not _LITTLE:
        values.byteswap()
    return values


def pack(items: Sequence[bytes], separator: bytes) -> tuple[bytes, bytes]:
    """(data, ends): `items` joined by `separator`, and the end offset of each item (the
    separator after it excluded). With a separator of b"\\n" the data is a block of lines
    once one more b"\\n" is added."""
    ends = array("I")
    end = -len(separator)
    for item in items:
        end += len(separator) + len(item)
        ends.append(end)
    return separator.join(items), uint32s(ends)


def span(ends: array[int], i: int, separator_bytes: int) -> tuple[int, int]:
    """Where item `i` lies in the data: (start, end)."""
    return (ends[i - 1] + separator_bytes if i else 0), ends[i]

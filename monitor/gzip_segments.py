"""A gzip body put together from pieces compressed one at a time, so that a piece that has not
changed since the last scrape is not formatted or compressed again.

Each piece is raw deflate that ends on a byte boundary (a sync flush) and refers to nothing
before it, so pieces laid end to end are one deflate stream, and the body one gzip member, as
any gzip reader expects. The member's CRC-32 is combined from the pieces' own, as pigz does."""

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

GZIP_LEVEL = 1
"""A third of level 6's CPU (19 ms instead of 50 for 10,000 checks) for 7 % more bytes."""
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # deflate, no name, no time, fastest, unknown OS
_LAST_BLOCK = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15).flush()


@dataclass(frozen=True, slots=True)
class Segment:
    deflated: bytes
    crc: int
    """CRC-32 of the uncompressed bytes."""
    length: int
    zeros_crc: int
    """CRC-32 of `length` zero bytes, which moves an earlier CRC past this piece."""


def compress(data: bytes) -> Segment:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Segment(deflated, zlib.crc32(data), len(data), zlib.crc32(_zeros(len(data))))


def gzip_body(segments: Iterable[Segment]) -> bytes:
    parts = [_HEADER]
    crc = length = 0
    for segment in segments:
        parts.append(segment.deflated)
        # CRC-32 is affine: crc(A + B) = crc(zeros of len B, from crc(A)) ^ crc(zeros of len B) ^ crc(B).
        crc = zlib.crc32(_zeros(segment.length), crc) ^ segment.zeros_crc ^ segment.crc
        length += segment.length
    parts += [_LAST_BLOCK, struct.pack("<II", crc, length & 0xFFFFFFFF)]
    return b"".join(parts)


def inflate(segment: Segment) -> bytes:
    return zlib.decompressobj(-15).decompress(segment.deflated)


_zero_buffer = memoryview(b"")


def _zeros(length: int) -> memoryview:
    """`length` zero bytes. Read into a local: the history's thread compresses too, and may
    replace the shared buffer between the check and the slice."""
    global _zero_buffer
    buffer = _zero_buffer
    if len(buffer) < length:
        buffer = _zero_buffer = memoryview(bytes(max(length, 2 * len(buffer))))
    return buffer[:length]

"""Tiny real image and PDF files, written byte by byte (no imaging library): each index gives other bytes."""

from __future__ import annotations

import random
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(index: int, size: int = 2, noise: bool = False) -> bytes:
    """A ``size`` x ``size`` RGB PNG of one colour picked by ``index`` (random pixels with ``noise``)."""
    pixel = bytes([(index * 37) % 256, (index * 91) % 256, (index * 53) % 256])
    pixels = random.Random(index).randbytes if noise else lambda n: pixel * (n // 3)
    rows = b"".join(b"\x00" + pixels(3 * size) for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def gif(index: int) -> bytes:
    """A 1 x 1 GIF89a whose two-colour palette is picked by ``index``."""
    palette = bytes([index % 256, (index * 7) % 256, (index * 13) % 256, 255, 255, 255])
    screen = struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + palette + image + b"\x3b"


def jpeg(index: int) -> bytes:
    """An 8 x 8 grey baseline JPEG (one DC-only block, quantisation 1, one-code Huffman tables)."""
    grey = 40 + (index * 29) % 180
    diff = 8 * (grey - 128)  # the DC coefficient of a uniform block
    category = abs(diff).bit_length()
    value = diff if diff >= 0 else diff - 1 + (1 << category)
    bits = "0" + (format(value & ((1 << category) - 1), f"0{category}b") if category else "") + "0"  # DC, EOB
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")

    def segment(marker: int, data: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data

    one_code = bytes([1] + [0] * 15)  # a single code of length 1
    return (
        b"\xff\xd8"
        + segment(0xDB, b"\x00" + b"\x01" * 64)
        + segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code + bytes([category]))
        + segment(0xC4, b"\x10" + one_code + b"\x00")
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


_WEBP_1X1 = bytes.fromhex("2f000000100710111188 88fe0700".replace(" ", ""))  # a lossless 1 x 1 VP8L bitstream


def webp(index: int) -> bytes:
    """A 1 x 1 lossless WebP; ``index`` goes into an extra (ignored) RIFF chunk so the bytes differ."""
    vp8l = b"VP8L" + struct.pack("<I", len(_WEBP_1X1)) + _WEBP_1X1 + b"\x00"  # padded to even length
    extra = b"XIDX" + struct.pack("<I", 4) + struct.pack("<I", index)
    body = b"WEBP" + vp8l + extra
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pdf(index: int) -> bytes:
    """A one-page PDF whose text names ``index``."""
    text = f"BT /F1 12 Tf 10 20 Td (document {index}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 50] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


MAKERS = {"png": png, "jpg": jpeg, "gif": gif, "webp": webp}
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}

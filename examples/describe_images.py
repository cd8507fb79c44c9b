"""Describe a folder of images: ``spark.read.format("binaryFile")`` reads them, ``ChatCompletion(imageCol=...)``
sends each with a question, one answer per image.

Self-contained: it writes a few tiny PNGs into a temporary folder (any Hadoop-compatible path works the same:
``abfss://``, ``s3a://``, ``Files/`` in a Fabric lakehouse). With AZURE_OPENAI_ENDPOINT set it calls Azure
OpenAI (deployment AZURE_OPENAI_CHAT_DEPLOYMENT, default gpt-4o); otherwise the bundled emulator, whose
answer names each image by its media type and a hash of its bytes.

    python examples/describe_images.py
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark

from spark_aoai import ChatCompletion

CHAT_DEPLOYMENT = os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT", "gpt-4o")
COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255), "yellow": (255, 220, 0)}
QUESTION = "What colour is this image? Answer with one word."


def solid_png(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """A ``size`` x ``size`` PNG of one colour, written without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + bytes(rgb) * size) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_images(folder: Path) -> None:
    for name, rgb in COLOURS.items():
        (folder / f"{name}.png").write_bytes(solid_png(rgb))


def describe(spark, endpoint: str | None, folder: str):  # type: ignore[no-untyped-def]
    """One answer per image file under ``folder`` (columns path, response, error)."""
    images = spark.read.format("binaryFile").option("pathGlobFilter", "*.png").load(folder)
    chat = ChatCompletion(deploymentName=CHAT_DEPLOYMENT, endpoint=endpoint, promptTemplate=QUESTION,
                          imageCol="content", outputCol="response", errorCol="error")  # fmt: skip
    return chat.transform(images).select("path", "length", "response", "error")


def main() -> int:
    spark = local_spark("spark_aoai describe images")
    with tempfile.TemporaryDirectory() as folder, azure_or_emulator() as endpoint:
        write_images(Path(folder))
        rows = describe(spark, endpoint, folder).orderBy("path").collect()
        for row in rows:
            answer = row.response if row.error is None else f"{row.error.code}: {row.error.message}"
            print(f"{Path(row.path).name} ({row.length} bytes): {answer}")
    spark.stop()
    return 0 if all(row.error is None for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Blocking by embeddings, on the executors: each left row's ``k`` nearest right rows by cosine, a block of left
rows against a block of right rows at a time (one matrix product), so no pair is ever a row of its own.

``top_k_partition`` is the ``mapInArrow`` function over the cross join of the two sides' blocks; its output
(left id, right id, cosine) holds each left row's best ``k`` in that right block, and a window over the left
id keeps the best ``k`` overall. Free of pyspark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

CANDIDATES_DDL = "lid long, rid long, score double"
_SCHEMA = pa.schema([("lid", pa.int64()), ("rid", pa.int64()), ("score", pa.float64())])


def unit_rows(vectors: pa.Array) -> np.ndarray:
    """A list<float> array as a matrix of unit rows (a zero row stays zero)."""
    if len(vectors) == 0:
        return np.zeros((0, 1))
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    matrix = flat.reshape(len(vectors), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0.0, 1.0, norms)


def nearest(left: np.ndarray, right: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each left row, its ``k`` (or fewer) most similar right rows: (left index, right index, cosine).

    >>> nearest(np.eye(2), np.array([[1.0, 0.0], [0.6, 0.8]]), 1)[1].tolist()
    [0, 1]
    """
    scores = left @ right.T
    take = min(k, right.shape[0])
    if take == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    rows = np.repeat(np.arange(left.shape[0]), take)
    columns = best.reshape(-1)
    return rows, columns, scores[rows, columns]


def _fields(items: pa.StructArray) -> tuple[np.ndarray, np.ndarray]:
    """A block's ids and unit vectors (``flatten`` honours the slice's offset, as ``field`` may not)."""
    ids, vectors = items.flatten()
    return ids.to_numpy(zero_copy_only=False), unit_rows(vectors)


def top_k_partition(k: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function over rows ``(l: array<struct<id, vec>>, r: array<struct<id, vec>>)``."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for i in range(batch.num_rows):
                left_ids, left_vectors = _fields(batch.column("l")[i].values)
                right_ids, right_vectors = _fields(batch.column("r")[i].values)
                rows, columns, scores = nearest(left_vectors, right_vectors, k)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(left_ids[rows]), pa.array(right_ids[columns]), pa.array(scores)], schema=_SCHEMA
                )

    return partition


def cosine_partition(query: list[float]) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function over ``(id, vec)`` rows: each row's cosine with ``query`` (null: no vector)."""
    target = np.asarray(query, dtype=np.float64)
    target = target / (np.linalg.norm(target) or 1.0)
    schema = pa.schema([("id", pa.int64()), ("score", pa.float64())])

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            vectors = batch.column("vec")
            valid = vectors.is_valid().to_numpy(zero_copy_only=False)
            scores = np.full(batch.num_rows, np.nan)
            if valid.any():
                scores[valid] = unit_rows(vectors.filter(pa.array(valid))) @ target
            yield pa.RecordBatch.from_arrays([batch.column("id"), pa.array(scores, mask=~valid)], schema=schema)

    return partition

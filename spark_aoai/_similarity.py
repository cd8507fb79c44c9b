"""Similarity of two text columns: both sides embedded in the same requests, then the cosine per row.

The left and right texts of a batch are one embeddings batch (so duplicates across and within the columns
are sent once); a row's error is the first of its two sides'. Used by ``ai.similarity`` (``mapInArrow``) and
the SQL ``ai_similarity`` (a pandas UDF). Free of pyspark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from spark_aoai._arrow import array
from spark_aoai._contract import ROW_ERROR_ARROW_TYPE, RowError, RowResults
from spark_aoai._engine import open_hooks
from spark_aoai._executor import Plan
from spark_aoai._partition import run_partition


def cosines(results: RowResults, rows: int) -> tuple[list[float | None], list[RowError | None]]:
    """Row ``i``'s cosine of vectors ``i`` and ``rows + i`` of ``results``, or the first of their errors."""
    values: list[float | None] = []
    errors: list[RowError | None] = []
    for row in range(rows):
        error = results.errors[row] or results.errors[rows + row]
        left, right = results.values[row], results.values[rows + row]
        if error is not None or left is None or right is None:
            values.append(None)
            errors.append(error)
            continue
        a, b = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        values.append(float(a @ b) / norms if norms else None)
        errors.append(None)
    return values, errors


def encode(values: list[float | None], errors: list[RowError | None]) -> list[pa.Array]:
    return [
        array(values, pa.float64()),
        array([None if e is None else e.as_dict() for e in errors], ROW_ERROR_ARROW_TYPE),
    ]


def pairs(
    batches: Iterator[tuple[Sequence[Any], Sequence[Any], Any]], plan: Plan
) -> Iterator[tuple[list[pa.Array], Any]]:
    """``(left texts, right texts, context)`` batches in, ``([similarity, error], context)`` out, in order."""
    work = ((list(left) + list(right), (len(left), context)) for left, right, context in batches)
    for results, (rows, context) in run_partition(work, plan.operation, plan.config, open_hooks(plan.hooks)):
        yield encode(*cosines(results, rows)), context


def pair_partition(
    plan: Plan, left: str, right: str, names: list[str]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: each batch plus its similarity and error columns (named ``names``)."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        work = ((b.column(left).to_pylist(), b.column(right).to_pylist(), b) for b in batches)
        for columns, batch in pairs(work, plan):
            yield pa.RecordBatch.from_arrays([*batch.columns, *columns], names=batch.schema.names + names)

    return partition

"""Similarity of two text columns: both sides embedded in the same requests, then the cosine per row.

A row's item is a pair (``{"left": ..., "right": ...}``); ``Pairs`` is the plan's ``combine``: the left and
right texts of a batch are one embeddings batch (so duplicates across and within the columns are sent once),
and the results of the two sides are joined back into the row's cosine; a row's error is the first of its two
sides'. Used by ``ai.similarity`` and the SQL ``ai_similarity`` alike, through ``Plan.run``. Free of pyspark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from spark_aoai._core.arrow import array
from spark_aoai._core.columns import ERROR_FIELD
from spark_aoai._core.contract import OutputField, RowResults

PAIR_KEYS = ("left", "right")  # the keys of a row's item


def encode_similarities(results: RowResults) -> pa.Array:
    return array(results.values, pa.float64())


SIMILARITY_FIELD = OutputField("outputCol", "similarity", pa.float64(), encode_similarities)
OUTPUTS = (SIMILARITY_FIELD, ERROR_FIELD)  # the value and its error (no usage column: the two sides share it)


@dataclass(frozen=True)
class Pairs:
    """The ``Combine`` of a similarity plan: a batch's left texts then its right texts, embedded together."""

    parts: int = len(PAIR_KEYS)

    def split(self, items: Sequence[Any]) -> list[Any]:
        """The left texts, then the right ones; a pair with a null side is null on both (no text of it is sent:
        its similarity is null)."""
        left, right = PAIR_KEYS
        pairs = [
            (item[left], item[right]) if item is not None and None not in (item[left], item[right]) else (None, None)
            for item in items
        ]
        return [pair[0] for pair in pairs] + [pair[1] for pair in pairs]

    def join(self, results: RowResults, rows: int) -> RowResults:
        """Row ``i``'s cosine of vectors ``i`` and ``rows + i`` of ``results``, or the first of their errors."""
        joined = RowResults(rows)
        for row in range(rows):
            error = results.errors[row] or results.errors[rows + row]
            left, right = results.values[row], results.values[rows + row]
            if error is not None:
                joined.fail([row], error)
                continue
            if left is None or right is None:
                joined.succeed([row], None)
                continue
            a, b = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
            norms = float(np.linalg.norm(a) * np.linalg.norm(b))
            joined.succeed([row], float(a @ b) / norms if norms else None)
            joined.sources[row] = results.sources[row] or results.sources[rows + row]
        return joined

"""Output columns every operation may add (error, usage, finish reason, source) and the Arrow encoders that
fill an output column from a batch's ``RowResults``; Transformers and UDFs are both built from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

from spark_aoai._core.arrow import array, struct_of, validity
from spark_aoai._core.contract import ROW_ERROR_ARROW_TYPE, USAGE_ARROW_TYPE, OutputField, RowError, RowResults
from spark_aoai._core.pricing import Price

# -- encoders shared by the output declarations ----------------------------------------------------------


# (``_arrow.array``, not ``pa.array``: that one imports pandas on every fresh Python worker)


def encode_errors(results: RowResults) -> pa.Array:
    errors = results.errors
    columns = [[None if e is None else getattr(e, f.name) for e in errors] for f in fields(RowError)]
    return struct_of(columns, [e is not None for e in errors], ROW_ERROR_ARROW_TYPE)


def encode_usage(results: RowResults) -> pa.Array:
    figures = [None if u is None else u.figures() for u in results.usage]
    columns = [[None if f is None else f[i] for f in figures] for i in range(USAGE_ARROW_TYPE.num_fields)]
    return struct_of(columns, [f is not None for f in figures], USAGE_ARROW_TYPE)


def encode_finish_reasons(results: RowResults) -> pa.Array:
    return array(results.finish_reasons, pa.string())


def encode_sources(results: RowResults) -> pa.Array:
    return array(results.sources, pa.string())


def encode_strings(results: RowResults) -> pa.Array:
    return array(results.values, pa.string())


@dataclass(frozen=True)
class encode_typed:  # noqa: N801 - used as an encoder function, like the others
    """The encoder of a typed (structured) output column: values already converted to ``arrow_type``."""

    arrow_type: pa.DataType

    def __call__(self, results: RowResults) -> pa.Array:
        return array(results.values, self.arrow_type)


@dataclass(frozen=True)
class encode_cost:  # noqa: N801 - used as an encoder function, like the others
    """Each row's cost in US dollars from its usage at ``price`` (cached prompt tokens at their rate, the batch
    discount already in ``price``): the column sums to ``statistics()``' cost; null where the usage is null."""

    price: Price

    def __call__(self, results: RowResults) -> pa.Array:
        costs = [
            None if u is None else self.price.cost(u.prompt_tokens or 0, u.completion_tokens or 0, u.cached_tokens or 0)
            for u in results.usage
        ]
        return array(costs, pa.float64())


def cost_field(price: Price) -> OutputField:
    """The ``costCol`` output of a stage whose deployment has a price."""
    return OutputField("costCol", None, pa.float64(), encode_cost(price))


def encode_vectors(results: RowResults) -> pa.Array:
    """``list<float>`` from float32 vectors (None for null), built from one contiguous buffer."""
    vectors: Sequence[np.ndarray | None] = results.values
    lengths = np.fromiter((0 if v is None else v.shape[0] for v in vectors), dtype=np.int64, count=len(vectors))
    offsets = np.zeros(len(vectors) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [v for v in vectors if v is not None]
    flat = np.concatenate(present).astype(np.float32, copy=False) if present else np.zeros(0, dtype=np.float32)
    valid = np.fromiter((v is not None for v in vectors), dtype=bool, count=len(vectors))
    values = pa.Array.from_buffers(pa.float32(), len(flat), [None, pa.py_buffer(flat)])
    return pa.Array.from_buffers(
        pa.list_(pa.float32()), len(vectors), [validity(valid), pa.py_buffer(offsets)], children=[values]
    )


ERROR_FIELD = OutputField("errorCol", "error", ROW_ERROR_ARROW_TYPE, encode_errors)
USAGE_FIELD = OutputField("usageCol", None, USAGE_ARROW_TYPE, encode_usage)
FINISH_REASON_FIELD = OutputField("finishReasonCol", None, pa.string(), encode_finish_reasons)
SOURCE_FIELD = OutputField("deploymentCol", None, pa.string(), encode_sources)  # every stage may add it

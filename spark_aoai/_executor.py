"""What runs on the executors for a stage: its plan (settings, operation, output columns) and the
``mapInArrow`` function. Free of pyspark, so a fresh Python worker imports only what the job needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from spark_aoai._config import ClientConfig
from spark_aoai._contract import Operation, OutputField, RowResults
from spark_aoai._engine import HookFactory, open_hooks
from spark_aoai._partition import run_partition


@dataclass(frozen=True)
class OutputColumn:
    """A declared output field under the column name the stage's Params give it."""

    field: OutputField
    name: str


@dataclass(frozen=True)
class Plan:
    """What one transform (or UDF) runs: settings, the operation and its output columns; picklable."""

    config: ClientConfig
    operation: Operation
    outputs: tuple[OutputColumn, ...]
    hooks: tuple[HookFactory, ...] = ()
    dedup: bool = False

    def encode(self, results: RowResults) -> list[pa.Array]:
        return [column.field.encode(results) for column in self.outputs]

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.outputs]


@dataclass(frozen=True)
class Inputs:
    """The columns a stage reads: the items are one column's values, or with ``as_rows`` dicts of the columns
    (keyed by ``keys``, the user's names, while ``columns`` may be the renamed ones ``mapInArrow`` sees)."""

    columns: tuple[str, ...]
    as_rows: bool = False
    keys: tuple[str, ...] = ()

    def renamed(self, names: Mapping[str, str]) -> Inputs:
        return replace(self, columns=tuple(names[c] for c in self.columns), keys=self.keys or self.columns)

    def items(self, batch: pa.RecordBatch) -> list[Any]:
        if not self.as_rows:
            return list(batch.column(self.columns[0]).to_pylist())
        values = [batch.column(c).to_pylist() for c in self.columns]
        keys = self.keys or self.columns
        return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)] if values else []


def arrow_partition(plan: Plan, inputs: Inputs) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function ``mapInArrow`` runs on each partition: input batches in, same rows plus results out."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        work = ((inputs.items(batch), batch) for batch in batches)
        for results, batch in run_partition(work, plan.operation, plan.config, open_hooks(plan.hooks), plan.dedup):
            columns = list(batch.columns) + plan.encode(results)
            yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names + plan.names)

    return partition

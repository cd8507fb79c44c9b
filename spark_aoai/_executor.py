"""What runs on the executors for a stage: its plan (settings, operation, output columns) and the
``mapInArrow`` function. Free of pyspark, so a fresh Python worker imports only what the job needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


def arrow_partition(plan: Plan, input_col: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function ``mapInArrow`` runs on each partition: input batches in, same rows plus results out."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        work = ((batch.column(input_col).to_pylist(), batch) for batch in batches)
        for results, batch in run_partition(work, plan.operation, plan.config, open_hooks(plan.hooks), plan.dedup):
            columns = list(batch.columns) + plan.encode(results)
            yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names + plan.names)

    return partition

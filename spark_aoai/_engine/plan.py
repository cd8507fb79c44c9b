"""What runs on the executors for a stage: its plan (settings, operation, output columns) and the
``mapInArrow`` function. Free of pyspark, so a fresh Python worker imports only what the job needs.

Every online flavour (the Transformer, the UDFs, the SQL functions, ``ai.similarity``) runs a stage's rows
through ``Plan.run``, the one caller of the partition runner; the dry run (``estimate``) and batch mode's
lines plan the same rows with ``Plan.expand`` and the plan's operation, and send nothing through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from spark_aoai._client.config import ClientConfig
from spark_aoai._core.contract import Operation, OutputField, RowResults
from spark_aoai._engine.hooks import HookFactory, open_hooks
from spark_aoai._engine.partition import run_partition

T = TypeVar("T")


@dataclass(frozen=True)
class OutputColumn:
    """A declared output field under the column name the stage's Params give it."""

    field: OutputField
    name: str


class Combine(Protocol):
    """How a row's item becomes several of the operation's items (both texts of a pair), and their results
    the row's one result again (``_similarity.Pairs``)."""

    @property
    def parts(self) -> int:
        """The operation's items per row."""

    def split(self, items: Sequence[Any]) -> list[Any]: ...

    def join(self, results: RowResults, rows: int) -> RowResults: ...


@dataclass(frozen=True)
class Plan:
    """What one transform (or UDF) runs: settings, the operation and its output columns; picklable.

    Built on the driver by one function (``AzureOpenAIStage._plan``), from the stage's Params.
    """

    config: ClientConfig
    operation: Operation
    outputs: tuple[OutputColumn, ...]
    hooks: tuple[HookFactory, ...] = ()
    dedup: bool = False
    combine: Combine | None = None

    def run(self, batches: Iterable[tuple[Sequence[Any], T]]) -> Iterator[tuple[RowResults, T]]:
        """Each batch's rows answered: ``(items, context)`` in, ``(results, context)`` out, in input order.

        The one caller of the partition runner, with the plan's hooks (opened once per task) and ``dedup``.
        """
        work: Iterator[tuple[Sequence[Any], Any]] = iter(batches)
        combine = self.combine
        if combine is not None:
            work = ((combine.split(items), (len(items), context)) for items, context in work)
        answered = run_partition(work, self.operation, self.config, open_hooks(self.hooks), self.dedup)
        for results, context in answered:
            if combine is None:
                yield results, context
            else:
                rows, own = context
                yield combine.join(results, rows), own

    def expand(self, items: Sequence[Any]) -> list[Any]:
        """The operation's items for a batch's rows (``run`` sends these): the items, or each pair's two."""
        return self.combine.split(items) if self.combine is not None else list(items)

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
        for results, batch in plan.run((inputs.items(batch), batch) for batch in batches):
            columns = list(batch.columns) + plan.encode(results)
            yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names + plan.names)

    return partition

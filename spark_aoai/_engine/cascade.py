"""What runs on the executors for a model cascade: each batch's rows through the levels, cheapest first.

Every level is a ``Plan`` of its own (its deployment, its cache entries, its statistics records, the job's one
spend-cap ledger) and runs its rows through ``Plan.run``. Level 0 answers every row of a batch; a cheap level
keeps the answers whose confidence (``_confidence``) is at or above its threshold and passes the other rows
(and those it failed) to the next level; the final level answers whatever reaches it. The levels are chained
generators, so a batch's routed rows are asked while the next batch is at the cheap level, and every input row
comes out exactly once, with the answer, error, usage (every level's asks of it, added up) and source of the
level that answered it, and the cascade column: ``deployment``, ``confidence`` (the last cheap level's score),
``threshold`` and ``method``.

A cheap answer without logprobs (a deployment that has none) is scored by agreement instead: the level's
``sampler`` (the same deployment at temperature 1 with a fixed seed) answers the row once more, and the score is
1.0 when the two answers agree (``_calibrate.agree``), 0.0 when not (None when the second request failed); the
second request's usage is the row's. Both passes score a row the same way, so the thresholds fit either kind.

The calibration pass (``thresholds=None``) sends every row of the sample to every level and returns, per
cheap level, each row's score and whether its answer differs from the final one (``_calibrate.agree``), and
every level's tokens for the row (what answering every row at the final level would cost). Free of pyspark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa

from spark_aoai._core.arrow import array, struct_of
from spark_aoai._core.contract import RowResults, Usage, add_usage
from spark_aoai._engine.plan import Inputs, Plan
from spark_aoai._planning.calibrate import agree, differing_fields

T = TypeVar("T")
CASCADE_ARROW_TYPE = pa.struct(
    [("deployment", pa.string()), ("confidence", pa.float64()), ("threshold", pa.float64()), ("method", pa.string())]
)
SAMPLE_FIELDS = (("scores", pa.list_(pa.float64())), ("disagree", pa.list_(pa.bool_())),
                 ("fields", pa.list_(pa.list_(pa.string()))), ("tokens", pa.list_(pa.list_(pa.int64()))),
                 ("methods", pa.list_(pa.string())))  # fmt: skip
LOGPROBS, AGREEMENT, NONE = "logprobs", "agreement", "none"


class Routed:
    """One batch on its way through the levels: which rows each level was asked for, and what it said."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items
        self.pending = list(range(len(items)))
        self.asked: list[list[int]] = []  # per level: the batch's rows sent to it
        self.results: list[RowResults] = []  # per level: its results, by position in ``asked``
        self.level: list[int | None] = [None] * len(items)  # the level whose answer a row keeps
        self.score: list[float | None] = [None] * len(items)
        self.thresholds: list[float | None] = [None] * len(items)
        self.methods: list[str | None] = [None] * len(items)  # how the last cheap level scored the row
        self.methods_of: list[list[str]] = []  # per level: each asked row's method, by position in ``asked``
        self.resampled: set[int] = set()  # the current level's positions scored by agreement

    def ask(self) -> list[Any]:
        self.asked.append(list(self.pending))
        return [self.items[row] for row in self.pending]

    def answered(self, results: RowResults, threshold: float | None, final: bool, route_all: bool) -> None:
        level = len(self.results)
        self.results.append(results)
        resampled, self.resampled = self.resampled, set()
        methods = [AGREEMENT if p in resampled else NONE if sure is None else LOGPROBS
                   for p, sure in enumerate(results.confidence)]  # fmt: skip
        self.methods_of.append(methods)
        still = []
        for position, row in enumerate(self.asked[level]):
            score = results.confidence[position]
            if not final:
                self.score[row], self.thresholds[row], self.methods[row] = score, threshold, methods[position]
            keep = final or (
                not route_all and threshold is not None and score is not None and results.errors[position] is None
                and score >= threshold
            )  # fmt: skip
            if keep:
                self.level[row] = level
            else:
                still.append(row)
        self.pending = still

    def merged(self) -> RowResults:
        """The batch's one result per row: the answer of the level that kept it, every level's usage."""
        out = RowResults(len(self.items))
        index = [{row: p for p, row in enumerate(asked)} for asked in self.asked]
        for row in range(len(self.items)):
            level = self.level[row]
            assert level is not None
            usage: Usage | None = None
            for asked, results in zip(index, self.results, strict=True):
                if row in asked:
                    usage = add_usage(usage, results.usage[asked[row]])
            results, position = self.results[level], index[level][row]
            error = results.errors[position]
            if error is not None:
                out.fail([row], error, usage)
            else:
                out.succeed([row], results.values[position], usage, results.finish_reasons[position])
            source = results.sources[position]
            if source is not None:
                out.mark_source([row], source)
        return out

    def sample_columns(self) -> list[pa.Array]:
        """The calibration pass's columns: per cheap level, scores, disagreements and differing fields; per
        level, the row's tokens (prompt, completion, cached, total)."""
        index = [{row: p for p, row in enumerate(asked)} for asked in self.asked]
        final, final_at = self.results[-1], index[-1]
        scores, disagree, fields, tokens, methods = [], [], [], [], []
        for row in range(len(self.items)):
            truth = final_at[row]
            final_error = final.errors[truth] is not None
            row_scores, row_disagree, row_fields = [], [], []
            for level in range(len(self.results) - 1):
                results, position = self.results[level], index[level][row]
                failed = results.errors[position] is not None
                row_scores.append(None if failed else results.confidence[position])
                differing = [] if failed or final_error else differing_fields(results.values[position],
                                                                             final.values[truth])  # fmt: skip
                row_disagree.append(final_error or bool(differing))
                row_fields.append(differing)
            scores.append(row_scores)
            disagree.append(row_disagree)
            fields.append(row_fields)
            tokens.append([_tokens(results.usage[index[level][row]]) for level, results in enumerate(self.results)])
            methods.append([self.methods_of[level][index[level][row]] for level in range(len(self.results) - 1)])
        columns: list[list[Any]] = [scores, disagree, fields, tokens, methods]
        return [array(values, kind) for values, (_, kind) in zip(columns, SAMPLE_FIELDS, strict=True)]

    def cascade_column(self, names: Sequence[str]) -> pa.Array:
        deployments = [names[level] if level is not None else None for level in self.level]
        columns: list[list[Any]] = [deployments, self.score, self.thresholds, self.methods]
        return struct_of(columns, [True] * len(self.items), CASCADE_ARROW_TYPE)


def _tokens(usage: Usage | None) -> list[int]:
    usage = usage or Usage()
    return [usage.prompt_tokens or 0, usage.completion_tokens or 0, usage.cached_tokens or 0, usage.total_tokens or 0]


@dataclass(frozen=True)
class Cascade:
    """The levels' plans (cheap first, final last), their names, and each cheap level's threshold; with
    ``thresholds`` None it is the calibration pass (every row to every level); ``samplers``: per cheap level, the
    plan that answers a row once more when its answer had no logprobs. Picklable."""

    plans: tuple[Plan, ...]
    names: tuple[str, ...]
    thresholds: tuple[float | None, ...] | None = None
    samplers: tuple[Plan | None, ...] = ()

    def run(self, batches: Iterable[tuple[Sequence[Any], T]]) -> Iterator[tuple[Routed, T]]:
        stream: Iterator[tuple[Routed, Any]] = ((Routed(items), context) for items, context in batches)
        for level, plan in enumerate(self.plans):
            stream = self._level(level, plan, stream)
        return stream

    def _level(self, level: int, plan: Plan, stream: Iterator[tuple[Routed, T]]) -> Iterator[tuple[Routed, T]]:
        final = level == len(self.plans) - 1
        threshold = None if self.thresholds is None or final else self.thresholds[level]
        if self.thresholds is not None and not final and threshold is None:  # it keeps no row: not asked at all
            for routed, context in stream:
                routed.ask()
                routed.answered(RowResults(len(routed.asked[level])), None, final, False)
                yield routed, context
            return
        work = ((routed.ask(), (routed, context)) for routed, context in stream)
        answered = plan.run(work)
        sampler = None if final or level >= len(self.samplers) else self.samplers[level]
        if sampler is not None:
            answered = _by_agreement(sampler, answered)
        for results, (routed, context) in answered:
            routed.answered(results, threshold, final, self.thresholds is None)
            yield routed, context


def _by_agreement(
    sampler: Plan, answered: Iterator[tuple[RowResults, tuple[Routed, T]]]
) -> Iterator[tuple[RowResults, tuple[Routed, T]]]:
    """A level's results with every answer that had no logprobs scored by agreement with a second answer."""

    def again() -> Iterator[tuple[list[Any], tuple[RowResults, list[int], Routed, T]]]:
        for results, (routed, context) in answered:
            asked = routed.asked[len(routed.results)]
            unscored = [p for p in range(len(results)) if results.errors[p] is None and results.confidence[p] is None]
            yield [routed.items[asked[p]] for p in unscored], (results, unscored, routed, context)

    for second, (results, unscored, routed, context) in sampler.run(again()):
        for position, p in enumerate(unscored):
            results.usage[p] = add_usage(results.usage[p], second.usage[position])
            same = second.errors[position] is None and agree(results.values[p], second.values[position])
            results.confidence[p] = None if second.errors[position] is not None else float(same)
        routed.resampled = set(unscored)
        yield results, (routed, context)


def cascade_partition(
    cascade: Cascade, inputs: Inputs
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of the routed pass: the input columns, the final plan's outputs (from the
    level that answered each row) and the cascade column."""
    final = cascade.plans[-1]

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for routed, batch in cascade.run((inputs.items(batch), batch) for batch in batches):
            columns = [*batch.columns, *final.encode(routed.merged()), routed.cascade_column(cascade.names)]
            yield pa.RecordBatch.from_arrays(columns, names=[*batch.schema.names, *final.names, "_spark_aoai_cascade"])

    return partition


def sample_partition(
    cascade: Cascade, inputs: Inputs
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of the calibration pass: ``SAMPLE_FIELDS`` per sample row."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for routed, _ in cascade.run((inputs.items(batch), None) for batch in batches):
            yield pa.RecordBatch.from_arrays(routed.sample_columns(), names=[name for name, _ in SAMPLE_FIELDS])

    return partition

"""``ai.join``: the pairs of rows of two DataFrames for which a condition in words holds, without asking about
every pair.

Two plans, chosen by the right side's size (``plan="auto"``) or named:

- **embeddings** (blocking): both sides embedded (``embeddingDeploymentName``), each left row's ``k`` nearest
  right rows by cosine found as Spark work (``_semantic_spark.nearest_pairs``), and only those ``k`` pairs per
  left row checked by the chat model: ``n_left`` embedding texts + ``n_right`` + ``n_left x k`` checks (packed
  with ``rowsPerRequest``), instead of ``n_left x n_right``;
- **classification**: when the right side has at most ``maxListedRows`` rows, they are listed in one prompt and
  each left row asks once which of them match (``n_left`` requests).

The checks run through the task stages (``ai``'s, handed in), so through ``Plan.run``: packing, cache,
statistics and the spend cap apply. The result has every column of both sides (a name on both sides becomes
``left_<name>`` and ``right_<name>``) and ``errorCol``: a pair whose check failed is kept with its error, and so
is a left row that could not be embedded or asked (its right columns null).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_aoai._core import constants as C
from spark_aoai._planning.semantic import LISTING_INSTRUCTIONS, PAIR_INSTRUCTIONS, PairCondition, numbered
from spark_aoai._spark.semantic_spark import (
    chat_kwargs,
    embedded,
    embedding_kwargs,
    nearest_pairs,
    prefixed,
    quoted,
    text_of,
    with_ids,
)
from spark_aoai.exceptions import ConfigurationError

PLANS = ("auto", "embeddings", "classification")


@dataclass(frozen=True)
class Sides:
    """Both sides with their row ids (``lefts``, ``rights``), renamed safe for templates (``*_safe``: each column
    ``_sa_l<i>`` / ``_sa_r<i>``, the ids ``_sa_lid`` / ``_sa_rid``) and the renaming."""

    lefts: DataFrame
    rights: DataFrame
    left_safe: DataFrame
    right_safe: DataFrame
    left_names: dict[str, str]
    right_names: dict[str, str]

    @classmethod
    def of(cls, lefts: DataFrame, rights: DataFrame) -> Sides:
        left_safe, left_names = prefixed(lefts, "_sa_l")
        right_safe, right_names = prefixed(rights, "_sa_r")
        left_safe = left_safe.withColumnRenamed(left_names["_sa_lid"], "_sa_lid")
        right_safe = right_safe.withColumnRenamed(right_names["_sa_rid"], "_sa_rid")
        return cls(lefts, rights, left_safe, right_safe, left_names, right_names)

    def fields(self, side: str, columns: tuple[str, ...]) -> list[str]:
        names = self.left_names if side == "left" else self.right_names
        return [names[c] for c in columns]


@dataclass
class JoinStatistics:
    """What a join did: the plan, the sizes, the pairs the LLM checked and the naive plan's count."""

    plan: str
    left_rows: int
    right_rows: int
    naive_pair_checks: int
    pair_checks: int  # pairs the chat model decided (embeddings: candidates; classification: rows listed)
    k: int | None = None
    stages: dict[str, Any] = field(default_factory=dict)  # "embed_left", "embed_right", "check": the stages run

    def as_dict(self) -> dict[str, Any]:
        """The counts, with each stage's requests (once an action ran over the join's output)."""
        out = {k: v for k, v in vars(self).items() if k != "stages"}
        for name, stage in self.stages.items():
            out[f"{name}_requests"] = stage.statistics().requests
        out["chat_requests"] = out.get("check_requests")
        return out


class SemanticJoin:
    """A configured join; ``join(left, right)`` returns the pairs, ``statistics()`` what it did.

    ``stages`` makes the chat stages: ``stages("check" | "listing", promptTemplate=..., ...)`` (``ai`` hands in
    its task stages: a boolean check, a list of matching numbers).
    """

    def __init__(
        self,
        condition: str,
        stages: Callable[..., Any],
        k: int = C.JOIN_DEFAULT_K,
        embeddingDeploymentName: str | None = None,
        plan: str = "auto",
        maxListedRows: int = C.JOIN_DEFAULT_MAX_LISTED_ROWS,
        errorCol: str = "error",
        **kwargs: Any,
    ) -> None:
        self.condition = PairCondition.parse(condition)
        if plan not in PLANS:
            raise ConfigurationError(f"plan must be one of {list(PLANS)}, got {plan!r}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigurationError(f"k must be a whole number of 1 or more (candidates per left row), got {k!r}")
        self.embedding_deployment = embeddingDeploymentName
        if plan == "embeddings":
            self._need_embeddings(None)
        self.stages, self.k, self.plan, self.max_listed = stages, k, plan, maxListedRows
        self.error_col = errorCol
        self.chat = chat_kwargs(kwargs)
        self.embedding = embedding_kwargs(kwargs, embeddingDeploymentName)
        self._statistics: JoinStatistics | None = None

    def _need_embeddings(self, right_rows: int | None) -> None:
        if not self.embedding_deployment:
            more = "" if right_rows is None else f" (the right side has {right_rows} rows, over maxListedRows)"
            raise ConfigurationError(
                f"embeddingDeploymentName is needed to block candidates by embeddings{more}, e.g. "
                "embeddingDeploymentName='text-embedding-3-small' (or plan='classification' for a small right side)"
            )

    def statistics(self) -> dict[str, Any]:
        """The plan chosen, the sizes, the pairs checked beside the naive count, and each stage's requests."""
        if self._statistics is None:
            raise ValueError("statistics(): this join has not run yet")
        return self._statistics.as_dict()

    def join(self, left: DataFrame, right: DataFrame) -> DataFrame:
        condition = self.condition
        for side, df, columns in (("left", left, condition.left), ("right", right, condition.right)):
            text_of(df, columns, f"condition ({{{side}.<column>}})")
        shared = set(left.columns) & set(right.columns)
        names = [f"left_{c}" if c in shared else c for c in left.columns]
        names += [f"right_{c}" if c in shared else c for c in right.columns]
        if self.error_col in names:
            raise ConfigurationError(f"errorCol: {self.error_col!r} is a column of the inputs; set errorCol=...")
        lefts, rights = with_ids(left, "_sa_lid"), with_ids(right, "_sa_rid")
        left_rows, right_rows = lefts.count(), rights.count()
        plan = self.plan
        if plan == "auto":
            plan = "classification" if right_rows <= self.max_listed else "embeddings"
        if plan == "embeddings":
            self._need_embeddings(right_rows)
        stats = JoinStatistics(plan, left_rows, right_rows, left_rows * right_rows, 0)
        self._statistics = stats
        sides = Sides.of(lefts, rights)
        found = self._listed(sides, stats) if plan == "classification" else self._blocked(sides, stats)
        order = sides.fields("left", tuple(left.columns)) + sides.fields("right", tuple(right.columns))
        return found.select(
            *[F.col(c).alias(n) for c, n in zip(order, names, strict=True)], F.col("_sa_err").alias(self.error_col)
        )

    def _blocked(self, sides: Sides, stats: JoinStatistics) -> DataFrame:
        """The embeddings plan: each left row's ``k`` nearest right rows, checked one pair at a time."""
        condition, lefts, rights = self.condition, sides.lefts, sides.rights
        left_text, right_text = text_of(lefts, condition.left, "condition"), text_of(rights, condition.right, "c")
        left_vectors, embed_left = embedded(lefts, "_sa_lid", left_text, self.embedding)
        right_vectors, embed_right = embedded(rights, "_sa_rid", right_text, self.embedding)
        candidates = nearest_pairs(left_vectors, right_vectors, self.k, stats.left_rows, stats.right_rows).persist()
        stats.k, stats.pair_checks = self.k, candidates.count()
        pairs = (
            candidates.select(F.col("lid").alias("_sa_lid"), F.col("rid").alias("_sa_rid"))
            .join(sides.left_safe, "_sa_lid")
            .join(sides.right_safe, "_sa_rid")
        )
        template = condition.pair_template(sides.fields("left", condition.left), sides.fields("right", condition.right))
        check = self.stages(
            "check", promptTemplate=template, instructions=PAIR_INSTRUCTIONS, outputCol="_sa_holds",
            errorCol="_sa_err", **self.chat,
        )  # fmt: skip
        stats.stages.update({"embed_left": embed_left, "embed_right": embed_right, "check": check})
        checked = check.transform(pairs).persist()  # the answers are what costs: kept for every later action
        checked = checked.where(F.col("_sa_holds") | F.col("_sa_err").isNotNull())
        unembedded = (
            left_vectors.where(F.col("verr").isNotNull())
            .select(F.col("id").alias("_sa_lid"), F.col("verr").alias("_sa_err"))
            .join(sides.left_safe, "_sa_lid")
        )
        return checked.unionByName(unembedded, allowMissingColumns=True)

    def _listed(self, sides: Sides, stats: JoinStatistics) -> DataFrame:
        """The classification plan: the right side (small: at most ``maxListedRows``) listed in each prompt."""
        condition, rights, right_rows = self.condition, sides.rights, stats.right_rows
        if right_rows > max(self.max_listed, 0) and self.plan == "classification":
            raise ConfigurationError(
                f"plan='classification' lists the right side in every prompt; it has {right_rows} rows, more than "
                f"maxListedRows={self.max_listed}: use plan='embeddings' or raise maxListedRows"
            )
        listed = rights.select("_sa_rid", text_of(rights, condition.right, "condition").alias("t")).orderBy("_sa_rid")
        rows = listed.collect()  # at most maxListedRows rows: the prompt lists them all
        listing = numbered([r.t for r in rows])
        spark = rights.sparkSession
        index = spark.createDataFrame([(i, r._sa_rid) for i, r in enumerate(rows)], "_sa_index int, _sa_rid long")
        template = condition.listing_template(sides.fields("left", condition.left), "_sa_listing")
        ask = self.stages(
            "listing", promptTemplate=template, instructions=LISTING_INSTRUCTIONS, outputCol="_sa_matches",
            errorCol="_sa_err", **self.chat,
        )  # fmt: skip
        stats.pair_checks = stats.left_rows * right_rows
        stats.stages["check"] = ask
        # persisted: read twice below (matches and failures), and the answers are what costs
        answered = ask.transform(sides.left_safe.withColumn("_sa_listing", F.lit(listing))).persist()
        matched = (
            answered.where(F.col("_sa_err").isNull())
            .select("*", F.explode(F.array_distinct("_sa_matches")).alias("_sa_index"))
            .join(index, "_sa_index")
            .join(sides.right_safe, "_sa_rid")
        )
        failed = answered.where(F.col("_sa_err").isNotNull())
        return matched.unionByName(failed, allowMissingColumns=True).drop(quoted("_sa_listing"))

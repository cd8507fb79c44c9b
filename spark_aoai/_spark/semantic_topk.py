"""``ai.top_k``: the ``k`` rows that best satisfy a criterion in words, with a bounded number of LLM requests.

An embedding pre-filter (the criterion's vector against each row's, Spark work) keeps the ``candidates`` most
similar rows (default ``max(4k, 20)``); the chat model then ranks them list-wise: one request when they fit in
one prompt (at most ``C.TOP_K_MAX_LISTED`` and the prompt budget), else a tournament: groups ranked, each group's best
``k`` go on, until one group is left. For ``n`` rows: ``n + 1`` texts embedded and about ``m/g`` requests per
round for ``m`` candidates in groups of ``g`` (one round when ``m <= g``), whatever ``n`` is. Requests run
through the task stage ``ai`` hands in (``Plan.run``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_aoai._core import constants as C
from spark_aoai._planning.bpe import count_tokens
from spark_aoai._planning.semantic import RANKING_INSTRUCTIONS, one_line, ranking_prompt, top_of
from spark_aoai._planning.semantic_blocks import cosine_partition
from spark_aoai._spark.semantic_agg import prompt_budget
from spark_aoai._spark.semantic_spark import chat_kwargs, embedded, embedding_kwargs, quoted, text_of, with_ids
from spark_aoai._spark.spark_types import require_new_column
from spark_aoai.exceptions import ConfigurationError


class SemanticTopK:
    """A configured top-k; ``top(df, inputCol)`` returns the k rows, best first, with ``outputCol`` their rank."""

    def __init__(
        self,
        criterion: str,
        k: int,
        stages: Callable[..., Any],
        embeddingDeploymentName: str | None = None,
        candidates: int | None = None,
        outputCol: str = "rank",
        maxPromptTokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigurationError(f"k must be a whole number of 1 or more, got {k!r}")
        if not isinstance(criterion, str) or not criterion.strip():
            raise ConfigurationError("criterion: say what the best rows are, e.g. 'most urgent complaint'")
        if not embeddingDeploymentName:
            raise ConfigurationError(
                "embeddingDeploymentName is needed for the pre-filter, e.g. 'text-embedding-3-small'"
            )
        self.criterion, self.k, self.stages, self.output_col = criterion, k, stages, outputCol
        self.pool = candidates if candidates is not None else max(4 * k, 20)
        if self.pool < k:
            raise ConfigurationError(f"candidates must be k ({k}) or more, got {self.pool}")
        self.chat = chat_kwargs(kwargs)
        self.embedding = embedding_kwargs(kwargs, embeddingDeploymentName)
        self.budget = prompt_budget(self.chat.get("deploymentName"), maxPromptTokens)
        self._stats: dict[str, Any] | None = None
        self.failed = 0

    def statistics(self) -> dict[str, Any]:
        """Rows, the candidates ranked, the ranking requests (comparisons) and rounds."""
        if self._stats is None:
            raise ValueError("statistics(): this top_k has not run yet")
        return dict(self._stats)

    def top(self, df: DataFrame, inputCol: str) -> DataFrame:
        require_new_column(df.schema, self.output_col, "outputCol")
        text = text_of(df, [inputCol], "inputCol")
        rows = with_ids(df, "_sa_id")
        vectors, _ = embedded(rows, "_sa_id", text, self.embedding)
        spark = df.sparkSession
        query_rows = spark.createDataFrame([(0, self.criterion)], "_sa_id long, criterion string")
        query, _ = embedded(query_rows, "_sa_id", F.col("criterion"), self.embedding)
        found = query.first()
        if found is None or found["vec"] is None:
            raise ConfigurationError(f"ai.top_k: the criterion could not be embedded: {found['verr'] if found else ''}")
        scores = vectors.select("id", "vec").mapInArrow(cosine_partition(list(found["vec"])), "id long, score double")
        best = scores.where(F.col("score").isNotNull()).orderBy(F.col("score").desc(), "id").limit(self.pool)
        pool = best.join(rows.select(F.col("_sa_id").alias("id"), text.alias("t")), "id").orderBy(
            F.col("score").desc(), "id"
        )
        listed = [(int(r.id), str(r.t)) for r in pool.collect()]  # at most ``candidates`` rows
        self.failed = 0
        order, requests, rounds = self._rank(listed, spark)
        self._stats = {
            "rows": rows.count(), "candidates": len(listed), "k": self.k, "requests": requests, "rounds": rounds,
            "failed_requests": self.failed,
        }  # fmt: skip
        ranks = spark.createDataFrame(
            [(i, n + 1) for n, i in enumerate(order)], f"_sa_id long, `{self.output_col}` int"
        )
        return rows.join(ranks, "_sa_id").orderBy(quoted(self.output_col)).drop("_sa_id")

    def _group_size(self, listed: list[tuple[int, str]]) -> int:
        """Candidates per ranking prompt: at most ``C.TOP_K_MAX_LISTED``, and as many as fit the prompt budget."""
        model = self.chat.get("deploymentName")
        longest = max((count_tokens(f"[{len(listed)}] {one_line(t)}\n", model) for _, t in listed), default=1)
        fits = (self.budget - count_tokens(ranking_prompt(self.criterion, []), model) - 200) // max(longest, 1)
        if fits < 2:
            raise ConfigurationError("ai.top_k: two candidates do not fit in one prompt; raise maxPromptTokens")
        return int(min(C.TOP_K_MAX_LISTED, fits))

    def _rank(self, listed: list[tuple[int, str]], spark: Any) -> tuple[list[int], int, int]:
        """The best ``k`` ids, best first, by list-wise ranking (a tournament when the pool needs several
        prompts); the requests made and the rounds."""
        size = self._group_size(listed)
        if len(listed) > size and self.k >= size:
            raise ConfigurationError(f"k ({self.k}) must be below the candidates one prompt ranks ({size})")
        requests = rounds = 0
        while True:
            groups = [listed[i : i + size] for i in range(0, len(listed), size)] or [[]]
            prompts = [(g, ranking_prompt(self.criterion, [t for _, t in group])) for g, group in enumerate(groups)]
            stage = self.stages(
                "ranking", promptCol="_sa_prompt", instructions=RANKING_INSTRUCTIONS, outputCol="_sa_ranking",
                errorCol="_sa_err", **self.chat,
            )  # fmt: skip
            frame = spark.createDataFrame(prompts, "_sa_group int, _sa_prompt string")
            answered = stage.transform(frame).collect()
            answers = {r._sa_group: r._sa_ranking for r in answered}  # a failed one: the pre-filter's order
            self.failed += sum(r._sa_err is not None for r in answered)
            requests, rounds = requests + len(groups), rounds + 1
            winners = [group[n] for g, group in enumerate(groups) for n in top_of(answers.get(g), len(group), self.k)]
            if len(groups) == 1:
                return [i for i, _ in winners], requests, rounds
            listed = winners

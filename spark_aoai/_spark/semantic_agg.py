"""``ai.agg``: one answer per group of texts, for groups far larger than a context window.

Map-reduce in levels, each a Spark job: a group's texts are cut, in order, into chunks whose prompt fits the
budget (``maxPromptTokens``, or the model's context limit less ``COMPLETION_RESERVE_TOKENS``); each chunk is
one request (level 1: every text is read exactly once); the answers of a group with more than one chunk are
the items of the next level, until one answer remains. ``n`` texts of ``t`` tokens each take about
``n*t/budget`` requests at level 1, and the levels above add a few (their items are short answers). The
requests run through the task stage ``ai`` hands in (so ``Plan.run``: cache, statistics, spend cap). Each
group's row says its ``depth`` (levels) and ``requests``; a failed request fails its group (the answer null,
the error its first error). Null texts are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from spark_aoai._core import constants as C
from spark_aoai._planning.bpe import count_message_tokens, count_tokens
from spark_aoai._planning.semantic import AGG_INSTRUCTIONS, agg_prompt, chunks, one_line
from spark_aoai._spark.semantic_spark import chat_kwargs, quoted
from spark_aoai._spark.spark_types import require_column
from spark_aoai.exceptions import ConfigurationError


def context_tokens(deployment: str | None) -> int | None:
    """The known context limit of the model a deployment is named after (the longest name it starts with)."""
    lowered = (deployment or "").lower()
    known = [name for name in C.CONTEXT_TOKENS if lowered.startswith(name)]
    return C.CONTEXT_TOKENS[max(known, key=len)] if known else None


def prompt_budget(deployment: str | None, max_prompt_tokens: int | None) -> int:
    """The tokens a prompt may have: ``maxPromptTokens``, else the model's limit less the answer's reserve."""
    if max_prompt_tokens is not None:
        if max_prompt_tokens < 256:
            raise ConfigurationError(f"maxPromptTokens must be 256 or more, got {max_prompt_tokens}")
        return max_prompt_tokens
    limit = context_tokens(deployment)
    if limit is None:
        raise ConfigurationError(
            f"ai.agg: the context limit of deployment {deployment!r} is not known; set maxPromptTokens=..."
        )
    return limit - C.COMPLETION_RESERVE_TOKENS


def chunk_function(
    instruction: str, level: int, budget: int, model: str | None, keys: Sequence[str]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The ``applyInPandas`` function of one level: a group's items (ordered) cut into prompts that fit."""
    empty = agg_prompt(instruction, [], level)
    messages = [{"role": "system", "content": AGG_INSTRUCTIONS}, {"role": "user", "content": empty}]
    overhead = count_message_tokens(messages, model)
    room = int((budget - overhead) * C.PROMPT_SAFETY)

    def cut(group: pd.DataFrame) -> pd.DataFrame:
        group = group.sort_values("_sa_order", kind="stable")
        items = [str(t) for t in group["_sa_text"]]
        numbers = chunks([count_tokens(f"- {one_line(t)}\n", model) for t in items], room)
        by_chunk: dict[int, list[str]] = {}
        for number, item in zip(numbers, items, strict=True):
            by_chunk.setdefault(number, []).append(item)
        head = {key: group[key].iloc[0] for key in keys}
        rows = [
            {**head, "_sa_chunk": n, "_sa_prompt": agg_prompt(instruction, texts, level), "_sa_items": len(texts)}
            for n, texts in by_chunk.items()
        ]
        return pd.DataFrame(rows, columns=[*keys, "_sa_chunk", "_sa_prompt", "_sa_items"])

    return cut


class SemanticAgg:
    """A configured aggregation; ``aggregate(df, groupBy, inputCol)`` returns one row per group."""

    def __init__(
        self,
        instruction: str,
        stages: Callable[..., Any],
        outputCol: str = "answer",
        errorCol: str = "error",
        maxPromptTokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(instruction, str) or not instruction.strip():
            raise ConfigurationError("instruction: say what to answer over each group, e.g. 'List the main themes'")
        self.instruction, self.stages = instruction, stages
        self.output_col, self.error_col = outputCol, errorCol
        self.chat = chat_kwargs(kwargs)
        self.budget = prompt_budget(self.chat.get("deploymentName"), maxPromptTokens)
        self.levels: list[dict[str, Any]] = []

    def statistics(self) -> dict[str, Any]:
        """Levels (depth), the requests of each level and in all, and each level's stage statistics."""
        return {
            "depth": len(self.levels),
            "requests": sum(level["requests"] for level in self.levels),
            "requests_per_level": [level["requests"] for level in self.levels],
            "prompt_budget": self.budget,
            "levels": [{k: v for k, v in level.items() if k != "stage"} for level in self.levels],
        }

    def aggregate(self, df: DataFrame, groupBy: str | Sequence[str], inputCol: str) -> DataFrame:
        keys = [groupBy] if isinstance(groupBy, str) else list(groupBy)
        for key in keys:
            require_column(df.schema, key, "groupBy")
        require_column(df.schema, inputCol, "inputCol")
        for name in (self.output_col, self.error_col, "depth", "requests"):
            if name in keys:
                raise ConfigurationError(f"groupBy: {name!r} is an output column of ai.agg; rename the column")
        key_fields = [df.schema[k] for k in keys]
        schema = StructType(
            [*key_fields, StructField("_sa_chunk", IntegerType()), StructField("_sa_prompt", StringType()),
             StructField("_sa_items", IntegerType())]
        )  # fmt: skip
        current = df.where(quoted(inputCol).isNotNull()).select(
            *[quoted(k) for k in keys],
            quoted(inputCol).cast("string").alias("_sa_text"),
            F.monotonically_increasing_id().alias("_sa_order"),
        )
        finished: list[DataFrame] = []
        counts: list[DataFrame] = []
        model = self.chat.get("deploymentName")
        self.levels = []
        for level in range(1, C.AGG_MAX_LEVELS + 1):
            cut = chunk_function(self.instruction, level, self.budget, model, keys)
            prompts = current.groupBy(*[quoted(k) for k in keys]).applyInPandas(cut, schema)
            stage = self.stages(
                "answer", promptCol="_sa_prompt", instructions=AGG_INSTRUCTIONS, outputCol="_sa_answer",
                errorCol="_sa_err", **self.chat,
            )  # fmt: skip
            answered = stage.transform(prompts).persist()
            summary = answered.groupBy(*[quoted(k) for k in keys]).agg(
                F.count(F.lit(1)).alias("_sa_n"),
                F.first("_sa_err", ignorenulls=True).alias("_sa_first_err"),
                F.first("_sa_answer").alias("_sa_only"),
            )
            summary = summary.persist()
            counts.append(summary.select(*[quoted(k) for k in keys], F.col("_sa_n")))
            done = summary.where((F.col("_sa_n") == 1) | F.col("_sa_first_err").isNotNull())
            finished.append(
                done.select(
                    *[quoted(k) for k in keys],
                    F.when(F.col("_sa_first_err").isNull(), F.col("_sa_only")).alias(self.output_col),
                    F.col("_sa_first_err").alias(self.error_col),
                    F.lit(level).alias("depth"),
                )
            )
            going = summary.where((F.col("_sa_n") > 1) & F.col("_sa_first_err").isNull()).select(*keys)
            sizes = answered.agg(F.count(F.lit(1)).alias("n"), F.sum("_sa_items").alias("items")).first()
            continuing = going.count()
            self.levels.append(
                {"level": level, "requests": int(sizes["n"]), "items_read": int(sizes["items"] or 0),
                 "groups_continuing": continuing, "stage": stage}
            )  # fmt: skip
            if continuing == 0:
                break
            answer = F.col("_sa_answer")
            if answered.schema["_sa_answer"].dataType != StringType():  # a typed answer is read as its JSON
                answer = F.to_json(answer)
            current = answered.join(going, keys).select(
                *[quoted(k) for k in keys], answer.alias("_sa_text"), F.col("_sa_chunk").cast("long").alias("_sa_order")
            )
        else:
            raise ConfigurationError(
                f"ai.agg: {C.AGG_MAX_LEVELS} levels did not reduce the answers to one; raise maxPromptTokens"
            )
        result = _union(finished)
        total = _union(counts).groupBy(*[quoted(k) for k in keys]).agg(F.sum("_sa_n").cast("int").alias("requests"))
        return result.join(total, keys)


def _union(frames: Iterator[DataFrame] | list[DataFrame]) -> DataFrame:
    frames = list(frames)
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out

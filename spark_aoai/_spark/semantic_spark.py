"""What the semantic operators share on the Spark side: row ids, the connection keyword arguments split between
the chat and the embeddings stage, embeddings of a side (through the ``Embedding`` stage, so ``Plan.run``),
and blocking: each left row's ``k`` nearest right rows by cosine as Spark work (block against block,
``_semantic_blocks``), never a side collected to the driver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_aoai._core import constants as C
from spark_aoai._planning.semantic_blocks import CANDIDATES_DDL, top_k_partition
from spark_aoai._spark.spark_types import require_column
from spark_aoai._spark.stage import SECRET_ARGUMENTS
from spark_aoai.transformers import Embedding

EMBEDDING_ONLY = ("dimensions", "batchSize", "maxBatchTokens")


def chat_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments the chat stages take (the embeddings-only ones left out)."""
    return {k: v for k, v in kwargs.items() if k not in EMBEDDING_ONLY}


def embedding_kwargs(kwargs: dict[str, Any], deployment: str | None) -> dict[str, Any]:
    """The keyword arguments ``Embedding`` takes among ``kwargs``, its deployment ``deployment`` when given."""
    probe = Embedding()
    out = {k: v for k, v in kwargs.items() if k in SECRET_ARGUMENTS or probe.hasParam(k)}
    out = {k: v for k, v in out.items() if k not in ("outputCol", "errorCol", "inputCol", "rowsPerRequest")}
    if deployment:
        out["deploymentName"] = deployment
    return out


def quoted(name: str) -> Column:
    return F.col(f"`{name}`")


def with_ids(df: DataFrame, name: str) -> DataFrame:
    """``df`` with a row id ``name``, persisted, so the ids stay the same in every job that reads them."""
    return df.withColumn(name, F.monotonically_increasing_id()).persist()


def text_of(df: DataFrame, columns: Sequence[str], param: str) -> Column:
    """The text a row is embedded as: its ``columns`` (checked to exist) joined by `` | ``."""
    for column in columns:
        require_column(df.schema, column, param)
    return F.concat_ws(" | ", *[quoted(c).cast("string") for c in columns])


def embedded(df: DataFrame, id_col: str, text: Column, kwargs: dict[str, Any]) -> tuple[DataFrame, Embedding]:
    """``(id, vec, verr)`` for each row of ``df``: the ``Embedding`` stage over its ``text`` (persisted)."""
    stage = Embedding(inputCol="_sa_text", outputCol="vec", errorCol="verr", outputType="array", **kwargs)
    vectors = stage.transform(df.select(quoted(id_col).alias("id"), text.alias("_sa_text"))).drop("_sa_text")
    return vectors.persist(), stage


def _blocks(vectors: DataFrame, rows: int, name: str) -> DataFrame:
    count = max(1, math.ceil(rows / C.JOIN_BLOCK_ROWS))
    keyed = vectors.where(F.col("vec").isNotNull()).withColumn("_sa_block", F.pmod(F.xxhash64("id"), F.lit(count)))
    return keyed.groupBy("_sa_block").agg(F.collect_list(F.struct("id", "vec")).alias(name)).select(name)


def nearest_pairs(left: DataFrame, right: DataFrame, k: int, left_rows: int, right_rows: int) -> DataFrame:
    """``(lid, rid, score)``: each embedded left row's ``k`` nearest right rows by cosine (Spark work: block
    pairs by matrix products on the executors, then a window keeps each left row's best ``k``)."""
    pairs = _blocks(left, left_rows, "l").crossJoin(_blocks(right, right_rows, "r"))
    found = pairs.mapInArrow(top_k_partition(k), CANDIDATES_DDL)
    best = Window.partitionBy("lid").orderBy(F.col("score").desc(), F.col("rid"))
    return found.withColumn("_sa_rank", F.row_number().over(best)).where(F.col("_sa_rank") <= k).drop("_sa_rank")


def prefixed(df: DataFrame, prefix: str) -> tuple[DataFrame, dict[str, str]]:
    """``df`` with each column renamed ``<prefix><i>`` (safe in templates and joins), and the renaming."""
    names = {c: f"{prefix}{i}" for i, c in enumerate(df.columns)}
    return df.select(*[quoted(c).alias(n) for c, n in names.items()]), names

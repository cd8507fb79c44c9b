"""The semantic operators' pure parts, without Spark: the prompts the library writes are the shapes the emulator
reads (so the emulator's answers are the rules' answers), chunking, ranking repair and block top-k."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spark_aoai._planning.semantic import (
    PairCondition,
    agg_prompt,
    chunks,
    filter_template,
    numbered,
    ranking_prompt,
    top_of,
)
from spark_aoai._planning.semantic_blocks import nearest, top_k_partition
from spark_aoai._planning.template import Template
from spark_aoai.emulator._semantic import aggregate, numbers, verdict
from spark_aoai.exceptions import ConfigurationError


def test_filter_prompt_is_read_by_the_emulator():
    prompt = Template.parse(filter_template("text", "is about {topic}")).render(
        {"text": "refund me", "topic": "refund"}
    )
    assert prompt == "Condition: is about refund\n\nText: refund me" and verdict(prompt) is True


def test_pair_and_listing_prompts_are_read_by_the_emulator():
    condition = PairCondition.parse("{left.name} and {right.title} name the same {{thing}}")
    assert (condition.left, condition.right) == (("name",), ("title",))
    assert condition.described == "the left row's name and the right row's title name the same {{thing}}"
    pair = Template.parse(condition.pair_template(["a"], ["b"])).render({"a": "acme blue kettle", "b": "blue kettle"})
    assert "same {thing}" in pair and verdict(pair) is True
    listing = Template.parse(condition.listing_template(["a"], "l")).render(
        {"a": "acme blue kettle", "l": numbered(["red cup", "blue acme kettle", "kettle"])}
    )
    assert numbers(listing) == [1]


def test_ranking_and_aggregate_prompts_are_read_by_the_emulator():
    assert numbers(ranking_prompt("urgent outage", ["fine", "urgent outage now", "an outage"])) == [1, 2, 0]
    assert aggregate(agg_prompt("themes", ["late refund", "refund\nplease"], 1)).startswith("refund, late")
    assert aggregate(agg_prompt("themes", ["refund, late", "refund"], 2)).startswith("refund")


@pytest.mark.parametrize("condition", ["{name} is nice", "{left.a} is nice", "{up.a} and {right.b}"])
def test_a_join_condition_must_name_both_sides(condition):
    with pytest.raises(ConfigurationError, match="condition"):
        PairCondition.parse(condition)


def test_chunks_and_top_of():
    assert chunks([3, 3, 3, 5, 1], 6) == [0, 0, 1, 2, 2] and chunks([9, 1], 5) == [0, 1]
    assert top_of([2, 2, 7, 0], 4, 3) == [2, 0, 1] and top_of(None, 3, 2) == [0, 1]


def test_block_top_k():
    _, columns, scores = nearest(np.eye(3), np.eye(3)[[2, 0, 1]], 1)
    assert columns.tolist() == [1, 2, 0] and np.allclose(scores, 1.0)
    item = pa.struct([("id", pa.int64()), ("vec", pa.list_(pa.float32()))])
    blocks = pa.array(
        [[{"id": 0, "vec": [1, 0]}, {"id": 1, "vec": [0, 1]}], [{"id": 2, "vec": [1, 1]}]], pa.list_(item)
    )
    right = pa.array([[{"id": 10, "vec": [1, 0.1]}, {"id": 11, "vec": [0.1, 1]}]] * 2, pa.list_(item))
    sliced = pa.RecordBatch.from_arrays([blocks, right], names=["l", "r"]).slice(1)  # an offset, as Arrow hands in
    out = pa.Table.from_batches(list(top_k_partition(2)([sliced]))).to_pydict()
    assert out["lid"] == [2, 2] and sorted(out["rid"]) == [10, 11]

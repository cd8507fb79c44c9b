"""The dry run behind ``stage.estimate(df)``: the stage's own planning over the input, counted, never sent.

Each partition is planned exactly as the job would plan it (the same operation: invalid rows refused,
embeddings deduplicated and packed into the same requests), and each request's prompt is counted with the
real tokenizer (``_bpe``). No ``Sender`` is built, so nothing reaches the network. One row per partition comes
back; the driver adds them up and turns them into cost and time with the price table and the quota.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from spark_aoai._core import constants as C
from spark_aoai._core.contract import RowResults
from spark_aoai._core.pricing import Price
from spark_aoai._engine.plan import Inputs, Plan
from spark_aoai._planning.bpe import count_message_tokens, count_tokens

COUNT_FIELDS = ("rows", "invalid_rows", "requests", "prompt_tokens", "bounded_requests", "completion_budget")
COUNTS_SCHEMA = pa.schema([(name, pa.int64()) for name in COUNT_FIELDS])


def request_prompt_tokens(payload: dict[str, Any], model: str | None) -> int:
    """The prompt tokens of one request body: a chat's messages, or an embeddings request's inputs."""
    if "messages" in payload:
        return count_message_tokens(payload["messages"], model)
    inputs = payload.get("input")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):  # the Responses API's conversation
        instructions = payload.get("instructions")
        system = [{"role": "system", "content": instructions}] if instructions else []
        return count_message_tokens(system + inputs, model)
    if isinstance(inputs, str):
        return count_tokens(inputs, model)
    return sum(count_tokens(text, model) for text in inputs or [])


def completion_limit(payload: dict[str, Any]) -> int | None:
    """The answer tokens a request allows (``max_completion_tokens`` / ``max_tokens``); None: unbounded."""
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        if isinstance(payload.get(name), int):
            return int(payload[name])
    return None


def count_partition(
    plan: Plan, inputs: Inputs, model: str | None, answers: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: one row of counts per partition. ``answers``: the API returns text.

    A row whose item is several of the operation's (a pair's two texts) is counted once, invalid when any of
    its parts is; its requests and tokens are those of all its parts."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        task = plan.operation.for_task()
        counts = dict.fromkeys(COUNT_FIELDS, 0)
        for batch in batches:
            rows = inputs.items(batch)
            items = plan.expand(rows)
            results = RowResults(len(items))
            units = task.plan(items, results)
            counts["rows"] += len(rows)
            invalid = {i % len(rows) for i, error in enumerate(results.errors) if error is not None}
            counts["invalid_rows"] += len(invalid)
            counts["requests"] += len(units)
            for unit in units:
                counts["prompt_tokens"] += request_prompt_tokens(unit.payload, model)
                limit = completion_limit(unit.payload) if answers else 0
                if limit is not None:
                    counts["bounded_requests"] += 1
                    counts["completion_budget"] += limit
        yield pa.RecordBatch.from_pylist([counts], schema=COUNTS_SCHEMA)

    return partition


def summarize(
    counts: dict[str, int],
    price: Price | None,
    tokenizer: str,
    requests_per_minute: float | None,
    tokens_per_minute: float | None,
    as_of: str,
) -> dict[str, Any]:
    """The estimate's dict from the summed counts.

    ``max_completion_tokens`` is what the settings allow the answers: each request's limit, and for requests
    without one the model's longest answer (from the price table; None when unknown). ``estimated_cost`` is
    ``(low, high)``: the prompts alone, and the prompts plus every answer at its limit. ``minutes`` is the
    longer of requests / RPM and tokens / TPM, the tokens counted as Azure's limiter counts them (prompt plus
    each request's limit, 16 without one).
    """
    requests, prompt = counts["requests"], counts["prompt_tokens"]
    unbounded = requests - counts["bounded_requests"]
    max_completion: int | None = counts["completion_budget"]
    if unbounded:
        longest = price.max_output_tokens if price is not None else None
        max_completion = None if longest is None else counts["completion_budget"] + unbounded * longest
    cost: tuple[float, float | None] | None = None
    if price is not None:
        high = None if max_completion is None else price.cost(prompt, max_completion)
        cost = (price.cost(prompt, 0), high)
    minutes = None
    charged = prompt + counts["completion_budget"] + unbounded * C.DEFAULT_COMPLETION_TOKENS
    spans = []
    if requests_per_minute:
        spans.append(requests / requests_per_minute)
    if tokens_per_minute:
        spans.append(charged / tokens_per_minute)
    if spans:
        minutes = max(spans)
    return {
        "rows": counts["rows"],
        "invalid_rows": counts["invalid_rows"],
        "requests": requests,
        "prompt_tokens": prompt,
        "max_completion_tokens": max_completion,
        "estimated_cost": cost,
        "minutes": minutes,
        "tokenizer": tokenizer,
        "prices_as_of": as_of if price is not None else None,
    }

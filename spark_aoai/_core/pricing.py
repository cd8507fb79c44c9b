"""Prices per model, to turn token counts into an estimated cost (job statistics, ``estimate``, ``maxCost``).

``PRICE_TABLE`` holds list prices in US dollars per million tokens (Azure OpenAI, Global Standard
deployments) as of ``PRICES_AS_OF``; a deployment is matched to the longest model name it starts with
(``gpt-4o-mini-prod`` -> ``gpt-4o-mini``). Prices change and differ by region, deployment type and agreement:
give a stage your own with the ``prices`` Param (``{"input": 2.5, "cached_input": 1.25, "output": 10}``),
which wins over the table. A cost is an estimate from these numbers, never the invoice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PRICES_AS_OF = "2025-08-01"


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens: prompt, cached prompt, completion (reasoning tokens bill as completion)."""

    input: float
    cached_input: float | None = None
    output: float = 0.0
    max_output_tokens: int | None = None  # the model's longest answer, the high end of ``estimate``

    def scaled(self, factor: float) -> Price:
        """Every rate times ``factor`` (batch mode bills ``C.BATCH_PRICE_FACTOR`` of the standard price)."""
        cached = None if self.cached_input is None else self.cached_input * factor
        return Price(self.input * factor, cached, self.output * factor, self.max_output_tokens)

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        """The price of these tokens: cached prompt tokens at ``cached_input`` (or ``input`` without one).

        >>> round(Price(2.5, 1.25, 10.0).cost(prompt=1_000_000, completion=100_000, cached=200_000), 4)
        3.25
        """
        cached = min(max(cached, 0), prompt)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt - cached) * self.input + cached * cached_rate + completion * self.output) / 1e6


PRICE_TABLE: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 0.125, 10.0, 128_000),
    "gpt-5-mini": Price(0.25, 0.025, 2.0, 128_000),
    "gpt-5-nano": Price(0.05, 0.005, 0.40, 128_000),
    "gpt-4.1": Price(2.0, 0.50, 8.0, 32_768),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60, 32_768),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40, 32_768),
    "gpt-4o": Price(2.50, 1.25, 10.0, 16_384),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60, 16_384),
    "o3": Price(2.0, 0.50, 8.0, 100_000),
    "o4-mini": Price(1.10, 0.275, 4.40, 100_000),
    "o3-mini": Price(1.10, 0.55, 4.40, 100_000),
    "gpt-35-turbo": Price(0.50, None, 1.50, 4_096),
    "text-embedding-3-small": Price(0.02),
    "text-embedding-3-large": Price(0.13),
    "text-embedding-ada-002": Price(0.10),
}


def price_from_param(value: str | None) -> Price | None:
    """The ``prices`` Param (JSON text of ``{"input", "cached_input", "output", "max_output_tokens"}``)."""
    if not value:
        return None
    fields: dict[str, Any] = json.loads(value)
    unknown = set(fields) - {"input", "cached_input", "output", "max_output_tokens"}
    if unknown or "input" not in fields:
        raise ValueError(
            f"prices needs 'input' (and optionally 'cached_input', 'output', 'max_output_tokens'), got {fields}"
        )
    if any(isinstance(v, (int, float)) and v < 0 for v in fields.values()):
        raise ValueError(f"prices must not be negative, got {fields}")
    return Price(**fields)


def price_for(model: str | None, override: Price | None = None) -> Price | None:
    """The stage's price: its ``prices`` Param, else the table's longest model name the deployment starts with.

    >>> price_for("gpt-4o-mini-batch") == PRICE_TABLE["gpt-4o-mini"], price_for("my-llama")
    (True, None)
    """
    if override is not None:
        return override
    if not model:
        return None
    name = model.lower()
    matches = [known for known in PRICE_TABLE if name.startswith(known)]
    return PRICE_TABLE[max(matches, key=len)] if matches else None

"""``stage.check()``: one minimal request on the driver before a long job, through the job's own engine.

The probe goes where the job's requests go (endpoint, deployment, credential, headers, caBundle, failover
list), with the same transport, retry policy and systemic-error rule, but no cache, statistics or spend cap:

- chat completions / the Responses API: the prompt ``Reply with OK.`` and an answer limit of
  ``C.CHECK_PROBE_ANSWER_TOKENS`` (the Responses API's minimum): about 25 tokens in all;
- embeddings: the one-word text ``ping`` (1 token).

A systemic failure (401/403, 404, DNS, connection refused, TLS) raises the ``SystemicError`` a task would
raise, its first line naming the fix; any other error raises ``RequestFailedError``. An answer cut at the
limit (a reasoning model's ``incomplete``) is a success: the service answered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from spark_aoai._core import constants as C
from spark_aoai._core.contract import Operation
from spark_aoai._engine.plan import Plan
from spark_aoai._planning.operations import ChatOperation
from spark_aoai._planning.param_values import is_reasoning_deployment
from spark_aoai.exceptions import RequestFailedError

PROBE_PROMPT = "Reply with OK."
PROBE_TEXT = "ping"


@dataclass(frozen=True)
class CheckResult:
    """What the probe found: where it went, how long it took and what it was billed."""

    where: str
    seconds: float
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None

    def __str__(self) -> str:
        return f"ok: {self.where} answered in {self.seconds:.2f} s ({self.total_tokens} tokens billed)"


def probe(plan: Plan, api: str | None) -> tuple[Operation, str]:
    """The probe's operation and item: the stage's own for embeddings, a bare chat request otherwise."""
    if api is None:
        return plan.operation, PROBE_TEXT
    reasoning = is_reasoning_deployment(plan.config.deployment)
    limit = "max_completion_tokens" if reasoning or api == "responses" else "max_tokens"
    chat = getattr(plan.operation, "chat", plan.operation)  # a packed operation's own chat operation
    model = getattr(chat, "model", None)
    return ChatOperation(model=model, options={limit: C.CHECK_PROBE_ANSWER_TOKENS}, api=api), PROBE_PROMPT


def check(plan: Plan, api: str | None) -> CheckResult:
    """Send the probe (see the module docstring); raise what a task would raise for a systemic failure."""
    operation, item = probe(plan, api)
    config = replace(plan.config, fail_on_systemic=True, fail_on_error=False)
    bare = replace(plan, config=config, operation=operation, hooks=(), dedup=False, combine=None)
    started = time.monotonic()
    results, _ = next(bare.run(iter([([item], None)])))
    seconds = time.monotonic() - started
    error = results.errors[0]
    if error is not None and error.status != 200:  # a 200 cut short (incomplete, refusal) still answered
        raise RequestFailedError(error)
    usage: Any = results.usage[0]
    return CheckResult(
        config.describe(),
        seconds,
        getattr(usage, "prompt_tokens", None),
        getattr(usage, "completion_tokens", None),
        getattr(usage, "total_tokens", None),
    )

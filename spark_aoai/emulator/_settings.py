"""The emulator's settings: rate limits, faults, the Batch API and the API key, as small dataclasses with every
default here.

``Settings`` travels as JSON to ``POST /_emulator/config`` (:func:`settings_to_dict` / :meth:`Settings.from_dict`),
so a test changes a running emulator, in this process or a child, the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RateLimit:
    """Azure-like budgets per deployment, and the shape of the limiter that enforces them.

    ``requests_per_minute=2400, window_seconds=1`` allows 40 requests/s with a burst of one second's worth.
    The shape (README, "Limiter shapes", says where each comes from):

    - ``window``: ``"continuous"`` refills each budget continuously, ``window_seconds`` of it at most (a GCRA);
      ``"sliding"`` counts the requests of the last ``window_seconds`` (Azure evaluates over 1 or 10 s) and the
      tokens of the last 60 s (tokens per minute), as Microsoft's aoai-api-simulator does.
    - ``limit_headers``: send ``x-ratelimit-limit-*`` beside ``x-ratelimit-remaining-*`` (the simulator does not).
    - ``retry_after``: ``"ms"`` sends ``retry-after-ms`` and ``retry-after``; ``"seconds"`` only a whole-second
      ``Retry-After`` (rounded up).
    - ``chat_cost``: a chat/responses request costs ``"prompt+max_tokens"`` (its prompt's tokens plus its
      ``max_tokens``, 16 when unset) or ``"max_tokens"`` alone (the simulator's rule).
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    window_seconds: float = 1.0
    window: str = "continuous"
    limit_headers: bool = True
    retry_after: str = "ms"
    chat_cost: str = "prompt+max_tokens"

    def __post_init__(self) -> None:
        for name, choices in (("window", WINDOWS), ("retry_after", RETRY_AFTERS), ("chat_cost", CHAT_COSTS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"RateLimit.{name} is one of {choices}, not {getattr(self, name)!r}")
        if self.window_seconds <= 0:
            raise ValueError(f"RateLimit.window_seconds must be positive, not {self.window_seconds}")


WINDOWS = ("continuous", "sliding")
RETRY_AFTERS = ("ms", "seconds")
CHAT_COSTS = ("prompt+max_tokens", "max_tokens")
TOKEN_WINDOW_SECONDS = 60.0  # a sliding limiter counts tokens per minute


@dataclass
class Faults:
    """Faults the emulator injects; all off by default.

    Rates are probabilities per request (0..1, drawn from one generator seeded by ``seed``); markers are
    substrings of a request's input that trigger a fault for that request (or, for embeddings, that input).
    The README's emulator section describes each; the CLI flag of ``quota_429_rate`` is ``--quota-429-rate``.
    """

    latency_ms: float = 0.0
    jitter: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    content_filter_marker: str | None = None
    finish_content_filter_marker: str | None = None
    context_length_marker: str | None = None
    max_input_tokens: int | None = None
    shuffle_embeddings: bool = False
    # 429s besides the rate limiter's: a quota refusal with a long retry-after, one with no retry headers at
    # all, and Fabric's capacity refusal.
    quota_429_rate: float = 0.0
    quota_retry_after_seconds: float = 60.0
    bare_429_rate: float = 0.0
    capacity_429_rate: float = 0.0
    capacity_retry_after_seconds: float = 30.0
    # a 200 body sent a few bytes at a time over trickle_seconds, so no single socket read waits long
    trickle_rate: float = 0.0
    trickle_seconds: float = 5.0
    # odd but valid chat answers
    content_parts_marker: str | None = None
    tool_calls_marker: str | None = None
    # broken embeddings: one element short, or NaN / Infinity values
    wrong_dimensions_marker: str | None = None
    non_finite_marker: str | None = None
    # json_schema answers that do not fit: "not_json", "missing_field", "wrong_type", or None for any of them
    bad_structured_rate: float = 0.0
    bad_structured_kind: str | None = None
    # packed answers ({"items": [{"id", ...}]}): items left out, or corrupted one way (an unknown id, another
    # item's id, an output that does not fit), each rolled per item
    pack_drop_rate: float = 0.0
    pack_corrupt_rate: float = 0.0
    # hostile 200s (billed like any answer): the whole body nested DEEP_NESTING levels deep
    # (``{"...", "nested": [[[...]]]}``), or the answer's text itself that deep
    deep_body_marker: str | None = None
    deep_answer_marker: str | None = None
    # json_schema answers whose numbers are non_finite_literal (NaN, Infinity, -Infinity or 1e400)
    non_finite_answer_marker: str | None = None
    non_finite_literal: str = "NaN"
    # Responses API 200s without usable text (billed): "reasoning_only", "in_progress", "output_string" or
    # "no_output_text" (a message whose parts are of an unknown type)
    no_text_marker: str | None = None
    no_text_kind: str = "reasoning_only"
    seed: int | None = None
    # cheap models (``_cheap.CHEAP_MODELS``) answer wrong on this share of rows (by the row's input and ``seed``),
    # and are unsure (a low logprob) on this share of the rows they get wrong (0: their confidence says nothing)
    cheap_wrong_rate: float = 0.0
    cheap_confidence_correlation: float = 0.9
    # packed answers mixed up, per pack: two items' ids exchanged ("ids": each answer keeps the tag it was
    # written with), two entries exchanged whole ("items": each keeps its id, tag and output), or two items'
    # outputs exchanged under their own ids and tags ("outputs": what no echoed tag can tell); None: any of them
    pack_swap_rate: float = 0.0
    pack_swap_kind: str | None = None
    # an item whose input holds this marker takes over its pack: every item's output becomes that item's own
    # (the model obeyed "ignore the other items and answer X for all")
    pack_injection_marker: str | None = None
    # a packed request answered as an ordinary one: plain text, the packing format ignored
    pack_ignore_rate: float = 0.0
    # cheap models return logprobs when asked (False: ``logprobs`` null, as a deployment that has none)
    cheap_logprobs: bool = True

    def __post_init__(self) -> None:
        for name in RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} is a probability between 0 and 1, not {value}")
        for name in ("latency_ms", "jitter", *SECONDS_FIELDS):
            if getattr(self, name) < 0:
                raise ValueError(f"Faults.{name} cannot be negative, not {getattr(self, name)}")
        if self.non_finite_literal not in NON_FINITE_LITERALS:
            raise ValueError(f"Faults.non_finite_literal is one of {NON_FINITE_LITERALS}")
        if self.no_text_kind not in NO_TEXT_KINDS:
            raise ValueError(f"Faults.no_text_kind is one of {NO_TEXT_KINDS}")
        if not 0.0 <= self.cheap_confidence_correlation <= 1.0:
            raise ValueError(
                f"Faults.cheap_confidence_correlation is between 0 and 1, not {self.cheap_confidence_correlation}"
            )
        if self.pack_swap_kind not in (None, *PACK_SWAP_KINDS):
            raise ValueError(f"Faults.pack_swap_kind is one of {PACK_SWAP_KINDS} or None")
        if self.bad_structured_kind not in (None, *BAD_STRUCTURED_KINDS):
            raise ValueError(f"Faults.bad_structured_kind is one of {BAD_STRUCTURED_KINDS} or None")


RATE_FIELDS = tuple(f.name for f in dataclasses.fields(Faults) if f.name.endswith("_rate"))
SECONDS_FIELDS = tuple(f.name for f in dataclasses.fields(Faults) if f.name.endswith("_seconds"))
BAD_STRUCTURED_KINDS = ("not_json", "missing_field", "wrong_type")
NON_FINITE_LITERALS = ("NaN", "Infinity", "-Infinity", "1e400")
NO_TEXT_KINDS = ("reasoning_only", "in_progress", "output_string", "no_output_text")
DEEP_NESTING = 5000
PACK_SWAP_KINDS = ("ids", "items", "outputs")


@dataclass
class BatchSettings:
    """The Batch API: Azure's input limits, how long a batch takes, and its faults (all off by default).

    A file over ``max_bytes`` is refused at upload (400); one over ``max_lines`` requests fails its batch at
    validation (``too_many_tasks``), as Azure does. A batch runs with the settings in force when it was created.
    """

    seconds: float = 0.2  # created -> completed; the lines are answered evenly over the middle 80%
    max_lines: int = 100_000
    max_bytes: int = 200_000_000
    # a line answered with no response, error code request_timeout; chosen by its custom_id's hash
    line_error_rate: float = 0.0
    # a batch that fails (token_limit_exceeded): rolled per batch, or when its input file holds the marker
    fail_rate: float = 0.0
    fail_marker: str | None = None
    # a batch that stops after this many lines and ends expired (the rest: batch_expired in the error file)
    expire_after_lines: int | None = None
    # output lines of requests whose input holds the marker: status_code "OK" (not a number), or the line written
    # twice, the second time with another answer (the same custom_id)
    text_status_marker: str | None = None
    duplicate_marker: str | None = None
    # the Files/Batch API's own faults, rolled per call: a creation made but answered 500 (its answer lost), a
    # list of batches answered 500, a list that ignores ``after`` (the first page again, has_more), a cancel
    # answered 500 (nothing done), a cancel that leaves the batch ``cancelling`` for good; and the calls named
    # in ``hold_calls`` (comma-separated, as the stats name them: "GET batches/{id}", "GET files/{id}/content")
    # held with no answer for ``hold_seconds``, then answered
    lost_create_rate: float = 0.0
    list_error_rate: float = 0.0
    list_ignores_after_rate: float = 0.0
    cancel_error_rate: float = 0.0
    cancel_stuck_rate: float = 0.0
    hold_calls: str | None = None
    hold_seconds: float = 30.0

    def __post_init__(self) -> None:
        rates = ("lost_create_rate", "list_error_rate", "list_ignores_after_rate", "cancel_error_rate",
                 "cancel_stuck_rate")  # fmt: skip
        for name in ("line_error_rate", "fail_rate", *rates):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"BatchSettings.{name} is a probability between 0 and 1, not {getattr(self, name)}")
        for name in ("seconds", "hold_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"BatchSettings.{name} cannot be negative, not {getattr(self, name)}")
        for name in ("max_lines", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"BatchSettings.{name} must be at least 1, not {getattr(self, name)}")
        if self.expire_after_lines is not None and self.expire_after_lines < 0:
            raise ValueError(f"BatchSettings.expire_after_lines cannot be negative, not {self.expire_after_lines}")


@dataclass
class Settings:
    """Everything that shapes the emulator's answers; replaced whole by ``/_emulator/config``."""

    api_key: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    faults: Faults = field(default_factory=Faults)
    # deployment name -> model: a strict registry (only these, on published api-versions). None serves the
    # deployments named after a known model (``_catalog.known_model``) and those of ``extra_deployments``.
    deployments: dict[str, str] | None = None
    batch: BatchSettings = field(default_factory=BatchSettings)
    # deployment name -> model, served besides the known model names when there is no registry
    extra_deployments: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        deployments = data.get("deployments")
        return cls(
            api_key=data.get("api_key"),
            rate_limit=RateLimit(**(data.get("rate_limit") or {})),
            faults=Faults(**(data.get("faults") or {})),
            batch=BatchSettings(**(data.get("batch") or {})),
            deployments=None if deployments is None else _names(deployments),
            extra_deployments=_names(data.get("extra_deployments") or {}),
        )


def _names(registry: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(registry).items()}


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The JSON form ``/_emulator/config`` takes."""
    return dataclasses.asdict(settings)

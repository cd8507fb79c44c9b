"""What the emulator knows about Azure: the models behind deployments and the published api-versions.

A model decides a deployment's embedding size, its context limit and whether it is a reasoning model (which
refuses ``max_tokens`` and sampling parameters). A deployment registry maps deployment names to models; with
none, a deployment must be named after a model the emulator knows (:func:`known_model`: ``gpt-4o``,
``gpt-4o-2024-08-06``, ``o3-mini``), so that a misspelt name (``gpt4o``) is Azure's 404 as it would be in Azure.
"""

from __future__ import annotations

from dataclasses import dataclass

# The data-plane inference api-versions Azure has published (GA and preview), from its OpenAPI documents.
GA_API_VERSIONS = ("2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21")
PREVIEW_API_VERSIONS = (
    "2022-03-01-preview",
    "2022-06-01-preview",
    "2023-03-15-preview",
    "2023-06-01-preview",
    "2023-07-01-preview",
    "2023-08-01-preview",
    "2023-09-01-preview",
    "2023-10-01-preview",
    "2023-11-01-preview",
    "2023-12-01-preview",
    "2024-02-15-preview",
    "2024-03-01-preview",
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2024-07-01-preview",
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-01-preview",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-02-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
)
API_VERSIONS = frozenset(GA_API_VERSIONS + PREVIEW_API_VERSIONS)
# Reasoning models answer only from this api-version on (Azure: "enabled only for api versions ... and later").
REASONING_MIN_API_VERSION = "2024-12-01-preview"
# The Files and Batch APIs (purpose "batch") are served from this api-version on; 2024-10-21 is the first GA one.
BATCH_MIN_API_VERSION = "2024-07-01-preview"


@dataclass(frozen=True)
class Model:
    """One model's facts: ``kind`` ("chat" or "embeddings"), its input limit in tokens, and more."""

    name: str
    kind: str
    context_tokens: int
    embedding_dimensions: int | None = None
    custom_dimensions: bool = False  # accepts ``dimensions`` (text-embedding-3-*)
    reasoning: bool = False

    @property
    def operation(self) -> str:
        return "embeddings" if self.kind == "embeddings" else "chatCompletion"


# Matched by the longest name the model (or deployment) name starts with.
MODELS = {
    m.name: m
    for m in (
        Model("gpt-4o", "chat", 128_000),
        Model("gpt-4o-mini", "chat", 128_000),
        Model("gpt-4.1", "chat", 1_047_576),
        Model("gpt-4.5", "chat", 128_000),
        Model("gpt-4", "chat", 8_192),
        Model("gpt-4-32k", "chat", 32_768),
        Model("gpt-4-turbo", "chat", 128_000),
        Model("gpt-35-turbo", "chat", 16_385),
        Model("gpt-3.5-turbo", "chat", 16_385),
        Model("gpt-5", "chat", 272_000, reasoning=True),
        Model("gpt-5-chat", "chat", 128_000),
        Model("o1", "chat", 200_000, reasoning=True),
        Model("o1-mini", "chat", 128_000, reasoning=True),
        Model("o3", "chat", 200_000, reasoning=True),
        Model("o4-mini", "chat", 200_000, reasoning=True),
        Model("text-embedding-ada-002", "embeddings", 8_192, 1536),
        Model("text-embedding-3-small", "embeddings", 8_192, 1536, custom_dimensions=True),
        Model("text-embedding-3-large", "embeddings", 8_192, 3072, custom_dimensions=True),
    )
}
_BY_LENGTH = sorted(MODELS, key=len, reverse=True)


def find_model(name: str) -> Model | None:
    """The model ``name`` is (or starts with: ``gpt-4o-2024-08-06`` is gpt-4o); None for an unknown name.

    >>> find_model("gpt-4.1-mini").context_tokens, find_model("o3-mini").reasoning, find_model("mine")
    (1047576, True, None)
    """
    lowered = name.lower()
    for known in _BY_LENGTH:
        if lowered.startswith(known):
            return MODELS[known]
    return None


# What may follow a model's name in a deployment named after it: a version (``2024-08-06``, ``0613``) or a variant.
VARIANT_WORDS = frozenset(("mini", "nano", "turbo", "preview", "latest", "instruct", "chat", "pro", "16k", "32k"))


def known_model(name: str) -> Model | None:
    """The model a deployment named ``name`` is, when the name is a known model's, maybe with versions or variants.

    Stricter than :func:`find_model`: what follows the model's name must be ``-`` and version numbers or
    :data:`VARIANT_WORDS`, so a typo is not taken for a model.

    >>> [m.name if m else None for m in map(known_model, ["gpt-4o-2024-08-06", "o3-mini", "gpt4o", "gpt-4o-x"])]
    ['gpt-4o', 'o3', None, None]
    """
    lowered = name.lower()
    for known in _BY_LENGTH:
        if lowered == known:
            return MODELS[known]
        if lowered.startswith(known + "-"):
            suffix = lowered[len(known) + 1 :].split("-")
            if all(part.isdigit() or part in VARIANT_WORDS for part in suffix):
                return MODELS[known]
    return None


REASONING_EFFORTS = ("minimal", "low", "medium", "high")
# The reasoning tokens a reasoning model reports for each effort (medium when none is asked for).
_REASONING_TOKENS = {"minimal": 16, "low": 64, "medium": 192, "high": 576}


def reasoning_tokens(model: str, effort: str | None) -> int:
    """What ``model`` spends thinking at ``effort``: 0 for a model that does not reason.

    >>> reasoning_tokens("o3-mini", None), reasoning_tokens("gpt-5", "high"), reasoning_tokens("gpt-4o", "high")
    (192, 576, 0)
    """
    facts = find_model(model)
    if facts is None or not facts.reasoning:
        return 0
    return _REASONING_TOKENS.get(effort or "medium", _REASONING_TOKENS["medium"])

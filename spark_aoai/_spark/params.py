"""Params shared by the stages, as mixins in the style of ``pyspark.ml.param.shared``, with every default read
from ``_constants``. Each mixin's typed ``getX``/``setX`` are generated from these declarations into
``_accessors`` (``python scripts/gen_accessors.py``; a test fails when they are stale), as pyspark generates
``pyspark.ml.param.shared``.

A secret is never a Param: Params are saved as JSON with the stage and shown by ``explainParams()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pyspark.ml.param import Param, Params, TypeConverters

from spark_aoai._client.config import API_STYLES
from spark_aoai._core import constants as C
from spark_aoai._planning.param_values import (
    choice,
    json_text,
    real,
    response_format,
    rows_per_request,
    stop_sequences,
    template,
    whole,
)
from spark_aoai._planning.schemas import schema_text
from spark_aoai._spark.accessors import (
    HasCacheAccessors,
    HasChatRequestAccessors,
    HasConnectionAccessors,
    HasEmbeddingRequestAccessors,
    HasFailoverAccessors,
    HasMediaAccessors,
    HasOutputsAccessors,
    HasPackingAccessors,
    HasReasoningAccessors,
    HasStructuredOutputAccessors,
    HasThroughputAccessors,
    HasUsageControlsAccessors,
)
from spark_aoai.exceptions import ConfigurationError

P = TypeVar("P", bound=type)
API_TYPES = ("chat_completions", "responses")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
VERBOSITIES = ("low", "medium", "high")


def _param(name: str, doc: str, converter: Callable[[Any], Any]) -> Param:
    return Param(Params._dummy(), name, doc, converter)


class HasConnection(HasConnectionAccessors):
    """Where requests go."""

    deploymentName = _param("deploymentName", "Azure OpenAI deployment (or model) name", TypeConverters.toString)
    endpoint = _param(
        "endpoint",
        "endpoint URL; default: AZURE_OPENAI_ENDPOINT, then Fabric's built-in endpoint",
        TypeConverters.toString,
    )
    apiVersion = _param(
        "apiVersion", f"api-version; default: OPENAI_API_VERSION or {C.DEFAULT_API_VERSION}", TypeConverters.toString
    )
    apiStyle = _param(
        "apiStyle",
        "auto | azure (deployments path) | azure_v1 (/openai/v1) | openai (OpenAI-compatible base URL)",
        choice("apiStyle", API_STYLES),
    )
    caBundle = _param(
        "caBundle", "path of a CA bundle for TLS verification (unset: the system's)", TypeConverters.toString
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"apiStyle": "auto"}


class HasThroughput(HasThroughputAccessors):
    """How hard, how long, and how patient."""

    concurrency = _param("concurrency", "maximum requests in flight per partition", whole("concurrency", 1))
    maxAttempts = _param("maxAttempts", "attempts per request, retries included", whole("maxAttempts", 1))
    connectTimeout = _param("connectTimeout", "connect timeout in seconds", real("connectTimeout", 0, above=True))
    requestTimeout = _param(
        "requestTimeout",
        "wall-clock limit of one attempt in seconds (the whole answer)",
        real("requestTimeout", 0, above=True),
    )
    deadlineSeconds = _param(
        "deadlineSeconds",
        "time budget per partition; rows unanswered by then get a timeout error (unset: none)",
        real("deadlineSeconds", 0),
    )
    maxRetryAfterSeconds = _param(
        "maxRetryAfterSeconds",
        "longest retry-after waited for; a longer one (an exhausted quota) stops the task with quota_exceeded",
        real("maxRetryAfterSeconds", 0, above=True),
    )
    maxRequestsPerMinute = _param(
        "maxRequestsPerMinute", "request budget for the whole job, split across concurrent tasks (unset: none)",
        real("maxRequestsPerMinute", 0),
    )  # fmt: skip
    maxTokensPerMinute = _param(
        "maxTokensPerMinute", "token budget for the whole job, split across concurrent tasks (unset: none)",
        real("maxTokensPerMinute", 0),
    )  # fmt: skip
    concurrentTasks = _param(
        "concurrentTasks", "tasks running at once, to split budgets (unset: from the Spark configuration)",
        whole("concurrentTasks", 0),
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {
        "maxAttempts": C.MAX_ATTEMPTS,
        "connectTimeout": C.CONNECT_TIMEOUT_SECONDS,
        "requestTimeout": C.REQUEST_TIMEOUT_SECONDS,
        "maxRetryAfterSeconds": C.MAX_RETRY_AFTER_SECONDS,
    }


class HasOutputs(HasOutputsAccessors):
    """Where results go, and what a failure does."""

    outputCol = _param("outputCol", "output column", TypeConverters.toString)
    errorCol = _param("errorCol", "error column: null on success, else a struct", TypeConverters.toString)
    usageCol = _param("usageCol", "optional column for token usage (off unless named)", TypeConverters.toString)
    failOnError = _param(
        "failOnError", "fail the task on the first error row instead of recording it", TypeConverters.toBoolean
    )
    onSystemicError = _param(
        "onSystemicError",
        "fail (default): a bad key, unknown deployment or dead endpoint fails the job at once; mark: mark the rows",
        choice("onSystemicError", ("fail", "mark")),
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"errorCol": "error", "failOnError": False, "onSystemicError": "fail"}


class HasCache(HasCacheAccessors):
    """Never pay twice: a persistent response cache and the dedup of identical requests."""

    cacheDir = _param(
        "cacheDir",
        "directory of the response cache: a local or FUSE path (/lakehouse/default/Files/..., /dbfs/...) or an "
        "fsspec URI; answers found there are not sent again (unset: no cache)",
        TypeConverters.toString,
    )
    dedup = _param(
        "dedup", "send identical requests of a task once and fan the answer out (False to sample each row)",
        TypeConverters.toBoolean,
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {"dedup": True}


class HasFailover(HasFailoverAccessors):
    """Deployments tried in order when one is out of quota or keeps failing."""

    deployments = _param(
        "deployments",
        "JSON list of {endpoint, deploymentName} tried in order (credentials are kept aside, never saved)",
        json_text,
    )
    deploymentCol = _param(
        "deploymentCol", "optional column naming the deployment that answered ('cache' for a stored answer)",
        TypeConverters.toString,
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasUsageControls(HasUsageControlsAccessors):
    """What a job may spend, where its statistics go, and whether its progress is shown (see ``_usage``)."""

    maxTotalTokens = _param(
        "maxTotalTokens", "spend cap for the whole job in billed tokens; later rows get budget_exhausted (unset: none)",
        whole("maxTotalTokens", 0),
    )  # fmt: skip
    maxCost = _param(
        "maxCost", "spend cap for the whole job in dollars, from the price table (unset: none)", real("maxCost", 0)
    )
    prices = _param(
        "prices", "this deployment's prices per million tokens: {'input', 'cached_input', 'output'}", json_text
    )
    statisticsDir = _param(
        "statisticsDir",
        "directory for the tasks' statistics records and the spend-cap ledger; a shared path on a cluster "
        "(unset: a temporary directory on each machine)",
        TypeConverters.toString,
    )
    progress = _param(
        "progress", "show a progress line on the driver (default: when the session is interactive)",
        TypeConverters.toBoolean,
    )  # fmt: skip
    costCol = _param(
        "costCol", "optional column for each row's cost in dollars, from the price table or prices (off unless named)",
        TypeConverters.toString,
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasChatRequest(HasChatRequestAccessors):
    """What a chat request asks for: prompts, instructions and the request fields of the same meaning."""

    promptCol = _param("promptCol", "string column of user prompts", TypeConverters.toString)
    messagesCol = _param(
        "messagesCol", "array<struct<role:string,content:string>> column of conversations", TypeConverters.toString
    )
    systemPrompt = _param("systemPrompt", "system message put before each prompt", TypeConverters.toString)
    finishReasonCol = _param("finishReasonCol", "optional column for finish_reason", TypeConverters.toString)
    temperature = _param("temperature", "sampling temperature (0 to 2)", real("temperature", 0, 2))
    topP = _param("topP", "nucleus sampling probability mass (0 to 1)", real("topP", 0, 1))
    maxTokens = _param("maxTokens", "max_tokens of the answer", whole("maxTokens", 1))
    maxCompletionTokens = _param(
        "maxCompletionTokens", "max_completion_tokens (reasoning models)", whole("maxCompletionTokens", 1)
    )
    seed = _param("seed", "sampling seed", whole("seed"))
    stop = _param("stop", "stop sequence(s): a string or a list of up to 4", stop_sequences)
    presencePenalty = _param("presencePenalty", "presence penalty (-2 to 2)", real("presencePenalty", -2, 2))
    frequencyPenalty = _param("frequencyPenalty", "frequency penalty (-2 to 2)", real("frequencyPenalty", -2, 2))
    responseFormat = _param(
        "responseFormat", "response_format as a dict or JSON text, e.g. {'type': 'json_object'}", response_format
    )
    user = _param("user", "end-user id sent as 'user'", TypeConverters.toString)
    extraBody = _param("extraBody", "dict (or JSON text) merged into every request body", json_text)
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasStructuredOutput(HasStructuredOutputAccessors):
    """Prompts from templates over columns, and a typed output column from an output schema."""

    promptTemplate = _param(
        "promptTemplate",
        "prompt over columns: {column}, {struct.field}; {{ and }} for braces (then systemPrompt is one too)",
        template("promptTemplate"),
    )
    nullPlaceholder = _param(
        "nullPlaceholder",
        "text put for a null placeholder value (unset: the row is invalid_input, no request)",
        TypeConverters.toString,
    )
    outputSchema = _param(
        "outputSchema",
        "typed output: DDL ('sentiment string, score double'), StructType, JSON-schema dict or pydantic model",
        schema_text,
    )
    outputRetries = _param(
        "outputRetries",
        "re-asks after an answer that does not fit outputSchema, before the row is invalid_output",
        whole("outputRetries", 0),
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"outputRetries": C.OUTPUT_RETRIES}


class HasPacking(HasPackingAccessors):
    """Prompt packing: several rows per chat request under one copy of the instructions (see ``_packing``)."""

    rowsPerRequest = _param(
        "rowsPerRequest",
        "rows packed into one request: 1 (none), a number, or 'auto' (as many as fit maxPackTokens, at most "
        f"{C.MAX_PACK_ROWS})",
        rows_per_request,
    )
    maxPackTokens = _param(
        "maxPackTokens",
        "with rowsPerRequest='auto': estimated prompt tokens per packed request",
        whole("maxPackTokens", 1),
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"rowsPerRequest": 1, "maxPackTokens": C.MAX_PACK_TOKENS}


class HasEmbeddingRequest(HasEmbeddingRequestAccessors):
    """What an embeddings request asks for, and how rows are batched into requests."""

    inputCol = _param("inputCol", "string column of texts to embed", TypeConverters.toString)
    dimensions = _param(
        "dimensions", "vector size for text-embedding-3 models (unset: the model's)", whole("dimensions", 0)
    )
    batchSize = _param(
        "batchSize",
        f"inputs per request (at most {C.MAX_EMBEDDING_INPUTS})",
        whole("batchSize", 1, C.MAX_EMBEDDING_INPUTS),
    )
    maxBatchTokens = _param("maxBatchTokens", "estimated tokens per request", whole("maxBatchTokens", 1))
    outputType = _param(
        "outputType",
        "array (array<float>) or vector (pyspark.ml.linalg)",
        choice("outputType", ("array", "vector")),
    )
    _param_defaults: ClassVar[dict[str, Any]] = {
        "batchSize": C.EMBEDDING_BATCH_SIZE,
        "maxBatchTokens": C.EMBEDDING_MAX_BATCH_TOKENS,
        "outputType": "array",
    }


class HasReasoning(HasReasoningAccessors):
    """Which API a chat stage calls, and what reasoning models (gpt-5, o-series) are asked for."""

    apiType = _param(
        "apiType",
        "chat_completions (default) or responses (the Responses API)",
        choice("apiType", API_TYPES),
    )
    reasoningEffort = _param(
        "reasoningEffort",
        "reasoning models: minimal, low, medium or high",
        choice("reasoningEffort", REASONING_EFFORTS),
    )
    verbosity = _param("verbosity", "reasoning models: low, medium or high", choice("verbosity", VERBOSITIES))
    reasoningModel = _param(
        "reasoningModel",
        "treat the deployment as a reasoning model (default: from its name: o1, o3, o4, gpt-5)",
        TypeConverters.toBoolean,
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"apiType": "chat_completions"}


class HasMedia(HasMediaAccessors):
    """Images and PDFs sent with each row's prompt."""

    imageCol = _param("imageCol", "image per row: binary (PNG/JPEG/GIF/WebP) or a URL", TypeConverters.toString)
    fileCol = _param("fileCol", "PDF per row: a binary column, sent as a file part", TypeConverters.toString)
    maxInputBytes = _param(
        "maxInputBytes", "largest image or file sent (else invalid_input)", whole("maxInputBytes", 1)
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"maxInputBytes": C.MAX_INPUT_BYTES}


def collect_defaults(cls: type) -> dict[str, Any]:
    """The defaults of every mixin of ``cls``, the stage's own ``_stage_defaults`` last."""
    merged: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        merged.update(vars(base).get("_param_defaults", {}))
    merged.update(getattr(cls, "_stage_defaults", {}))
    return merged


def check_param_names(stage: Params, names: list[str]) -> None:
    """Refuse an unknown keyword with the nearest Param's name: ``promptColumn`` -> ``promptCol``."""
    import difflib

    known = [p.name for p in stage.params]
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the Params are {sorted(known)}"
            raise ConfigurationError(f"unknown Param {name!r} for {type(stage).__name__}{hint}")

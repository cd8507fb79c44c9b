"""pyspark.ml Transformers: ``ChatCompletion`` and ``Embedding``.

Both add a response column and an error column with ``mapInArrow`` (DataFrame API only, so they work on
Spark Connect), keep every input row and column, and save/load like any pyspark.ml stage. Credentials are
constructor arguments, never Params: they are not written by ``save`` nor shown by ``explainParams``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from spark_aoai._chat import ChatOperation
from spark_aoai._config import ClientConfig, Limits, resolve_client_config
from spark_aoai._embeddings import MAX_INPUTS_PER_REQUEST, EmbeddingOperation
from spark_aoai._partition import Operation, run_partition
from spark_aoai._retry import RetryPolicy
from spark_aoai._schema import (
    EMBEDDING_TYPE,
    ERROR_ARROW_TYPE,
    ERROR_TYPE,
    MESSAGES_TYPE_HINT,
    USAGE_ARROW_TYPE,
    USAGE_TYPE,
    is_messages_type,
    require_column,
    require_new_column,
    to_arrow,
    vectors_to_arrow,
)
from spark_aoai.exceptions import ConfigurationError

_SECRET_ARGUMENTS = ("apiKey", "aadToken", "tokenProvider", "headers")


def _to_json_text(value: Any) -> str:
    """Params holding JSON (responseFormat, extraBody) accept a dict or a JSON string."""
    if isinstance(value, str):
        json.loads(value)
        return value
    return json.dumps(value)


def _infer_concurrent_tasks(spark: SparkSession | None) -> int:
    """How many tasks run at once, from the session's configuration (used to split explicit budgets)."""
    if spark is None:
        return 1

    def conf(key: str) -> str | None:
        try:
            return spark.conf.get(key, None)
        except Exception:  # Spark Connect may refuse some keys
            return None

    master = conf("spark.master") or ""
    if master.startswith("local"):
        cores = master[master.find("[") + 1 : master.find("]")].split(",")[0] if "[" in master else "1"
        if cores == "*":
            return os.cpu_count() or 1
        return max(1, int(cores)) if cores.isdigit() else 1
    task_cpus = int(conf("spark.task.cpus") or 1)
    instances, cores_per = conf("spark.executor.instances"), conf("spark.executor.cores")
    if instances and cores_per and instances.isdigit() and cores_per.isdigit():
        return max(1, int(instances) * int(cores_per) // task_cpus)
    parallelism = conf("spark.default.parallelism")
    return max(1, int(parallelism)) if parallelism and parallelism.isdigit() else 1


class _AzureOpenAIParams(Params):
    """Params shared by every stage: where to send, how hard, and where results go."""

    deploymentName = Param(
        Params._dummy(), "deploymentName", "Azure OpenAI deployment (or model) name", TypeConverters.toString
    )
    endpoint = Param(
        Params._dummy(),
        "endpoint",
        "endpoint URL; default: AZURE_OPENAI_ENDPOINT, then Fabric's built-in endpoint",
        TypeConverters.toString,
    )
    apiVersion = Param(
        Params._dummy(),
        "apiVersion",
        "api-version; default: OPENAI_API_VERSION or 2025-04-01-preview",
        TypeConverters.toString,
    )
    apiStyle = Param(
        Params._dummy(),
        "apiStyle",
        "auto | azure (deployments path) | azure_v1 (/openai/v1) | openai (OpenAI-compatible base URL)",
        TypeConverters.toString,
    )
    outputCol = Param(Params._dummy(), "outputCol", "output column", TypeConverters.toString)
    errorCol = Param(
        Params._dummy(), "errorCol", "error column: null on success, else a struct", TypeConverters.toString
    )
    concurrency = Param(
        Params._dummy(), "concurrency", "maximum requests in flight per partition", TypeConverters.toInt
    )
    maxAttempts = Param(Params._dummy(), "maxAttempts", "attempts per request, retries included", TypeConverters.toInt)
    connectTimeout = Param(Params._dummy(), "connectTimeout", "connect timeout in seconds", TypeConverters.toFloat)
    requestTimeout = Param(
        Params._dummy(), "requestTimeout", "read timeout per attempt in seconds", TypeConverters.toFloat
    )
    deadlineSeconds = Param(
        Params._dummy(),
        "deadlineSeconds",
        "time budget per partition; rows unanswered by then get a timeout error (0: none)",
        TypeConverters.toFloat,
    )
    maxRequestsPerMinute = Param(
        Params._dummy(),
        "maxRequestsPerMinute",
        "request budget for the whole job, split across concurrent tasks (0: none)",
        TypeConverters.toFloat,
    )
    maxTokensPerMinute = Param(
        Params._dummy(),
        "maxTokensPerMinute",
        "token budget for the whole job, split across concurrent tasks (0: none)",
        TypeConverters.toFloat,
    )
    concurrentTasks = Param(
        Params._dummy(),
        "concurrentTasks",
        "tasks running at once, to split budgets (0: from the Spark configuration)",
        TypeConverters.toInt,
    )
    failOnError = Param(
        Params._dummy(),
        "failOnError",
        "fail the task on the first error row instead of recording it",
        TypeConverters.toBoolean,
    )
    caBundle = Param(
        Params._dummy(),
        "caBundle",
        "path of a CA bundle for TLS verification (empty: system default)",
        TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            apiStyle="auto",
            errorCol="error",
            maxAttempts=10,
            connectTimeout=10.0,
            requestTimeout=300.0,
            deadlineSeconds=0.0,
            maxRequestsPerMinute=0.0,
            maxTokensPerMinute=0.0,
            concurrentTasks=0,
            failOnError=False,
            caBundle="",
        )
        self._secrets: dict[str, Any] = {}

    def _take_secrets(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Move credentials out of the constructor's arguments into a private, unpersisted attribute."""
        for name in _SECRET_ARGUMENTS:
            if name in kwargs:
                value = kwargs.pop(name)
                if value is not None:
                    self._secrets[name] = value
        return {k: v for k, v in kwargs.items() if v is not None}

    def setCredentials(
        self,
        apiKey: str | None = None,
        aadToken: str | None = None,
        tokenProvider: Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Set credentials (e.g. after ``load``); they are never saved with the stage."""
        self._take_secrets({"apiKey": apiKey, "aadToken": aadToken, "tokenProvider": tokenProvider, "headers": headers})
        return self

    def _get(self, param: Param) -> Any:
        return self.getOrDefault(param) if self.isDefined(param) else None

    def _client_config(self, spark: SparkSession | None) -> ClientConfig:
        concurrent = self.getOrDefault(self.concurrentTasks) or _infer_concurrent_tasks(spark)
        limits = Limits(
            concurrency=max(1, self.getOrDefault(self.concurrency)),
            max_requests_per_minute=self.getOrDefault(self.maxRequestsPerMinute) or None,
            max_tokens_per_minute=self.getOrDefault(self.maxTokensPerMinute) or None,
            concurrent_tasks=concurrent,
            deadline_seconds=self.getOrDefault(self.deadlineSeconds) or None,
            connect_timeout=self.getOrDefault(self.connectTimeout),
            read_timeout=self.getOrDefault(self.requestTimeout),
        )
        if self.getOrDefault(self.maxAttempts) < 1:
            raise ConfigurationError("maxAttempts must be at least 1")
        return resolve_client_config(
            deployment=self._get(self.deploymentName),
            endpoint=self._get(self.endpoint),
            api_version=self._get(self.apiVersion),
            api_style=self.getOrDefault(self.apiStyle),
            api_key=self._secrets.get("apiKey"),
            aad_token=self._secrets.get("aadToken"),
            token_provider=self._secrets.get("tokenProvider"),
            headers=self._secrets.get("headers"),
            retry=RetryPolicy(max_attempts=self.getOrDefault(self.maxAttempts)),
            limits=limits,
            verify=self.getOrDefault(self.caBundle) or True,
            fail_on_error=self.getOrDefault(self.failOnError),
        )


def _arrow_partition(
    operation: Operation,
    config: ClientConfig,
    input_col: str,
    encode: Callable[[Any], list[pa.Array]],
    names: list[str],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function ``mapInArrow`` runs on each partition: input batches in, same rows plus results out."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        work = ((batch.column(input_col).to_pylist(), batch) for batch in batches)
        for results, batch in run_partition(work, operation, config):
            columns = list(batch.columns) + encode(results)
            yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names + names)

    return partition


class _AzureOpenAITransformer(Transformer, _AzureOpenAIParams, DefaultParamsReadable, DefaultParamsWritable):
    """What both transformers share: validation on the driver, then ``mapInArrow``."""

    def _operation(self, config: ClientConfig) -> Operation:
        raise NotImplementedError

    def _input_column(self, schema: StructType) -> str:
        raise NotImplementedError

    def _result_fields(self) -> list[tuple[str, StructField, Callable[[Any], pa.Array]]]:
        raise NotImplementedError

    def _transform(self, dataset: DataFrame) -> DataFrame:
        schema = dataset.schema
        input_col = self._input_column(schema)
        fields = self._result_fields()
        for param_name, field, _ in fields:
            require_new_column(schema, field.name, param_name)
        config = self._client_config(dataset.sparkSession)
        operation = self._operation(config)
        encoders = [encode for _, _, encode in fields]
        out_schema = StructType(schema.fields + [field for _, field, _ in fields])

        def encode(results: Any) -> list[pa.Array]:
            return [encoder(results) for encoder in encoders]

        names = [field.name for _, field, _ in fields]
        return dataset.mapInArrow(_arrow_partition(operation, config, input_col, encode, names), out_schema)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(uid={self.uid!r}, deploymentName={self._get(self.deploymentName)!r})"


class ChatCompletion(_AzureOpenAITransformer):
    """Chat completions over a DataFrame: one request per row, many in flight, an error column instead of crashes.

    Parameters
    ----------
    deploymentName : str
        The Azure OpenAI deployment (with ``apiStyle`` ``azure_v1``/``openai``: the model) to call.
    promptCol / messagesCol : str
        A string column of user prompts, or an ``array<struct<role,content>>`` column of conversations.
    systemPrompt : str, optional
        A system message put before each prompt (unless the conversation starts with one).
    outputCol, errorCol : str
        The answer's text (null on failure) and the error struct (null on success).
    usageCol, finishReasonCol : str, optional
        Extra columns with token usage and ``finish_reason``; off unless named.
    apiKey, aadToken, tokenProvider, headers
        Credentials (exactly one kind) and extra secret headers; never saved, never printed.

    Examples
    --------
    >>> chat = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", outputCol="response")
    >>> out = chat.transform(df)  # doctest: +SKIP
    """

    promptCol = Param(Params._dummy(), "promptCol", "string column of user prompts", TypeConverters.toString)
    messagesCol = Param(
        Params._dummy(), "messagesCol", f"{MESSAGES_TYPE_HINT} column of conversations", TypeConverters.toString
    )
    systemPrompt = Param(
        Params._dummy(), "systemPrompt", "system message put before each prompt", TypeConverters.toString
    )
    usageCol = Param(Params._dummy(), "usageCol", "optional column for token usage", TypeConverters.toString)
    finishReasonCol = Param(
        Params._dummy(), "finishReasonCol", "optional column for finish_reason", TypeConverters.toString
    )
    temperature = Param(Params._dummy(), "temperature", "sampling temperature", TypeConverters.toFloat)
    topP = Param(Params._dummy(), "topP", "nucleus sampling probability mass", TypeConverters.toFloat)
    maxTokens = Param(Params._dummy(), "maxTokens", "max_tokens of the answer", TypeConverters.toInt)
    maxCompletionTokens = Param(
        Params._dummy(), "maxCompletionTokens", "max_completion_tokens (reasoning models)", TypeConverters.toInt
    )
    seed = Param(Params._dummy(), "seed", "sampling seed", TypeConverters.toInt)
    stop = Param(Params._dummy(), "stop", "stop sequences", TypeConverters.toListString)
    presencePenalty = Param(Params._dummy(), "presencePenalty", "presence penalty", TypeConverters.toFloat)
    frequencyPenalty = Param(Params._dummy(), "frequencyPenalty", "frequency penalty", TypeConverters.toFloat)
    responseFormat = Param(
        Params._dummy(),
        "responseFormat",
        "response_format as a dict or JSON text, e.g. {'type': 'json_object'}",
        _to_json_text,
    )
    user = Param(Params._dummy(), "user", "end-user id sent as 'user'", TypeConverters.toString)
    extraBody = Param(Params._dummy(), "extraBody", "dict (or JSON text) merged into every request body", _to_json_text)

    _REQUEST_OPTIONS = (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("maxTokens", "max_tokens"),
        ("maxCompletionTokens", "max_completion_tokens"),
        ("seed", "seed"),
        ("stop", "stop"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("user", "user"),
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._setDefault(outputCol="response", concurrency=32)
        self.setParams(**kwargs)

    def setParams(self, **kwargs: Any) -> ChatCompletion:
        """Set Params by name (and credentials, which are kept aside)."""
        return self._set(**self._take_secrets(dict(kwargs)))

    def _input_column(self, schema: StructType) -> str:
        prompt, messages = self._get(self.promptCol), self._get(self.messagesCol)
        if bool(prompt) == bool(messages):
            raise ConfigurationError("set exactly one of promptCol and messagesCol")
        if prompt:
            data_type = require_column(schema, prompt, "promptCol")
            if not isinstance(data_type, StringType):
                raise ConfigurationError(f"promptCol: column {prompt!r} is {data_type.simpleString()}, not string")
            return str(prompt)
        data_type = require_column(schema, messages, "messagesCol")
        if not is_messages_type(data_type):
            raise ConfigurationError(
                f"messagesCol: column {messages!r} is {data_type.simpleString()}, not {MESSAGES_TYPE_HINT}"
            )
        return str(messages)

    def _request_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for param_name, field in self._REQUEST_OPTIONS:
            value = self._get(self.getParam(param_name))
            if value is not None:
                options[field] = value
        response_format = self._get(self.responseFormat)
        if response_format:
            options["response_format"] = json.loads(response_format)
        extra = self._get(self.extraBody)
        if extra:
            options.update(json.loads(extra))
        return options

    def _operation(self, config: ClientConfig) -> Operation:
        return ChatOperation(
            deployment=config.deployment,
            model_in_body=config.endpoint.model_in_body,
            system_prompt=self._get(self.systemPrompt),
            options=self._request_options(),
        )

    def _result_fields(self) -> list[tuple[str, StructField, Callable[[Any], pa.Array]]]:
        fields: list[tuple[str, StructField, Callable[[Any], pa.Array]]] = [
            (
                "outputCol",
                StructField(self.getOrDefault(self.outputCol), StringType()),
                lambda r: to_arrow(r.values, pa.string()),
            ),
            (
                "errorCol",
                StructField(self.getOrDefault(self.errorCol), ERROR_TYPE),
                lambda r: to_arrow(r.errors, ERROR_ARROW_TYPE),
            ),
        ]
        usage, finish = self._get(self.usageCol), self._get(self.finishReasonCol)
        if usage:
            fields.append(
                ("usageCol", StructField(usage, USAGE_TYPE), lambda r: to_arrow(r.extras["usage"], USAGE_ARROW_TYPE))
            )
        if finish:
            fields.append(
                (
                    "finishReasonCol",
                    StructField(finish, StringType()),
                    lambda r: to_arrow(r.extras["finish_reason"], pa.string()),
                )
            )
        return fields


class Embedding(_AzureOpenAITransformer):
    """Embeddings over a DataFrame: batched, deduplicated base64 requests; bad inputs isolated per row.

    Parameters
    ----------
    deploymentName : str
        The embeddings deployment (or model) to call.
    inputCol, outputCol, errorCol : str
        The text column, the ``array<float>`` output (null on failure) and the error struct.
    dimensions : int, optional
        Ask text-embedding-3 models for shorter vectors.
    batchSize, maxBatchTokens : int
        At most this many inputs (<= 2048) and estimated tokens per request.
    outputType : str
        ``array`` (default) or ``vector`` for a ``pyspark.ml.linalg`` Vector column.

    Examples
    --------
    >>> emb = Embedding(deploymentName="text-embedding-3-small", inputCol="text", outputCol="embedding")
    >>> out = emb.transform(df)  # doctest: +SKIP
    """

    inputCol = Param(Params._dummy(), "inputCol", "string column of texts to embed", TypeConverters.toString)
    dimensions = Param(
        Params._dummy(), "dimensions", "vector size for text-embedding-3 models (0: the model's)", TypeConverters.toInt
    )
    batchSize = Param(
        Params._dummy(), "batchSize", f"inputs per request (at most {MAX_INPUTS_PER_REQUEST})", TypeConverters.toInt
    )
    maxBatchTokens = Param(Params._dummy(), "maxBatchTokens", "estimated tokens per request", TypeConverters.toInt)
    outputType = Param(
        Params._dummy(), "outputType", "array (array<float>) or vector (pyspark.ml.linalg)", TypeConverters.toString
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._setDefault(
            outputCol="embedding",
            concurrency=8,
            dimensions=0,
            batchSize=1000,
            maxBatchTokens=200_000,
            outputType="array",
        )
        self.setParams(**kwargs)

    def setParams(self, **kwargs: Any) -> Embedding:
        """Set Params by name (and credentials, which are kept aside)."""
        return self._set(**self._take_secrets(dict(kwargs)))

    def _input_column(self, schema: StructType) -> str:
        name = self._get(self.inputCol)
        data_type = require_column(schema, name, "inputCol")
        if not isinstance(data_type, StringType):
            raise ConfigurationError(f"inputCol: column {name!r} is {data_type.simpleString()}, not string")
        batch_size = self.getOrDefault(self.batchSize)
        if not 1 <= batch_size <= MAX_INPUTS_PER_REQUEST:
            raise ConfigurationError(f"batchSize must be between 1 and {MAX_INPUTS_PER_REQUEST}, got {batch_size}")
        if self.getOrDefault(self.outputType) not in ("array", "vector"):
            raise ConfigurationError("outputType must be 'array' or 'vector'")
        return str(name)

    def _operation(self, config: ClientConfig) -> Operation:
        return EmbeddingOperation(
            deployment=config.deployment,
            model_in_body=config.endpoint.model_in_body,
            dimensions=self.getOrDefault(self.dimensions) or None,
            batch_size=self.getOrDefault(self.batchSize),
            max_batch_tokens=self.getOrDefault(self.maxBatchTokens),
        )

    def _result_fields(self) -> list[tuple[str, StructField, Callable[[Any], pa.Array]]]:
        return [
            (
                "outputCol",
                StructField(self.getOrDefault(self.outputCol), EMBEDDING_TYPE),
                lambda r: vectors_to_arrow(r.values),
            ),
            (
                "errorCol",
                StructField(self.getOrDefault(self.errorCol), ERROR_TYPE),
                lambda r: to_arrow(r.errors, ERROR_ARROW_TYPE),
            ),
        ]

    def _transform(self, dataset: DataFrame) -> DataFrame:
        out = super()._transform(dataset)
        if self.getOrDefault(self.outputType) == "vector":
            from pyspark.ml.functions import array_to_vector

            name = self.getOrDefault(self.outputCol)
            out = out.withColumn(name, array_to_vector(out[name]))
        return out

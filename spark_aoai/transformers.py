"""pyspark.ml Transformers: ``ChatCompletion`` and ``Embedding``.

Both add an output column and an error column (plus optional usage / finish-reason columns), keep every
input row and column, and save/load like any pyspark.ml stage. Their Params come from the mixins in
``_params``; what runs on the executors comes from ``_stage``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, ClassVar

from pyspark.sql.types import BinaryType, StringType, StructType

from spark_aoai import _constants as C
from spark_aoai._batch_job import BatchMethods
from spark_aoai._config import ClientConfig
from spark_aoai._contract import Operation
from spark_aoai._executor import Inputs
from spark_aoai._media import Media
from spark_aoai._operations import ChatOperation, EmbeddingOperation
from spark_aoai._packing import packed
from spark_aoai._params import (
    HasChatRequest,
    HasEmbeddingRequest,
    HasMedia,
    HasPacking,
    HasReasoning,
    HasStructuredOutput,
    HasUsageControls,
)
from spark_aoai._schemas import output_from
from spark_aoai._spark_types import (
    MESSAGES_TYPE_HINT,
    is_messages_type,
    require_column,
    require_string,
    require_template_columns,
)
from spark_aoai._stage import AzureOpenAIStage
from spark_aoai._structured import StructuredOutput
from spark_aoai._template import Template
from spark_aoai._usage import UsageMethods
from spark_aoai._wire import responses as responses_wire
from spark_aoai.exceptions import ConfigurationError

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
API_TYPES = ("chat_completions", "responses")
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
VERBOSITIES = ("low", "medium", "high")
logger = logging.getLogger("spark_aoai")


def is_reasoning_deployment(name: str) -> bool:
    """Whether a deployment's name says it is a reasoning model (o1, o3, o4-mini, gpt-5, gpt-5-mini, ...)."""
    return name.lower().startswith(REASONING_PREFIXES)


def check_response_format(value: Any) -> None:
    """Refuse a response_format the service would refuse, naming the Param."""
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMAT_TYPES:
        raise ConfigurationError(
            f"responseFormat must be a dict with type one of {', '.join(RESPONSE_FORMAT_TYPES)}, got {value!r}"
        )
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not schema.get("name") or not isinstance(schema.get("schema"), dict):
            raise ConfigurationError(
                "responseFormat: json_schema needs {'name': ..., 'schema': {...}} "
                "(e.g. {'type': 'json_schema', 'json_schema': {'name': 'answer', 'schema': {...}, 'strict': True}})"
            )


class ChatCompletion(
    UsageMethods,
    BatchMethods,
    AzureOpenAIStage,
    HasChatRequest,
    HasReasoning,
    HasUsageControls,
    HasStructuredOutput,
    HasPacking,
    HasMedia,
):
    """Chat completions over a DataFrame: one request per row, many in flight, an error column instead of crashes.

    Parameters
    ----------
    deploymentName : str
        The Azure OpenAI deployment (with ``apiStyle`` ``azure_v1``/``openai``: the model) to call.
    promptCol / messagesCol / promptTemplate : str
        A string column of user prompts, an ``array<struct<role,content>>`` column of conversations, or a
        template over columns (``"Summarise {title} in {lang}: {body}"``; ``{{``/``}}`` for braces).
    systemPrompt : str, optional
        A system message put before each prompt (unless the conversation starts with one); with
        ``promptTemplate`` it is a template too.
    outputSchema : str, StructType, dict or pydantic model, optional
        Typed output: ``outputCol`` becomes a struct of this schema, asked for as a strict ``json_schema``;
        an answer that does not fit is re-asked ``outputRetries`` times, then the row is ``invalid_output``.
    imageCol, fileCol : str, optional
        An image per row (binary, sent as a data URL; or https:// / data: URL strings) and a PDF per row
        (binary), sent with the prompt; ``spark.read.format("binaryFile")``'s ``content`` column works.
    outputCol, errorCol : str
        The answer (text, or the typed struct; null on failure) and the error struct (null on success).
    usageCol, finishReasonCol : str, optional
        Extra columns with token usage and ``finish_reason``; off unless named.
    rowsPerRequest : int or "auto", optional
        Pack several rows into one request (one copy of the instructions); ``"auto"`` fits ``maxPackTokens``
        (default 4,000) prompt tokens, at most 50 rows. Not with ``messagesCol``.
    apiKey, aadToken, tokenProvider, headers
        Credentials (exactly one kind) and extra secret headers; never saved, never printed.

    Examples
    --------
    >>> chat = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", outputCol="response")
    >>> out = chat.transform(df)  # doctest: +SKIP
    """

    _stage_defaults: ClassVar[dict[str, Any]] = {"outputCol": "response", "concurrency": C.CHAT_CONCURRENCY}
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

    def _input_column(self, schema: StructType) -> str:
        prompt, messages = self._get(self.promptCol), self._get(self.messagesCol)
        if sum(bool(v) for v in (prompt, messages, self._get(self.promptTemplate))) != 1:
            raise ConfigurationError("set exactly one of promptCol and messagesCol (or promptTemplate)")
        if prompt:
            require_string(require_column(schema, prompt, "promptCol"), prompt, "promptCol")
            return str(prompt)
        data_type = require_column(schema, messages, "messagesCol")
        if not is_messages_type(data_type):
            raise ConfigurationError(
                f"messagesCol: column {messages!r} is {data_type.simpleString()}, not {MESSAGES_TYPE_HINT}"
            )
        return str(messages)

    def _templates(self) -> tuple[Template | None, Template | None]:
        """The prompt template and, with one, the system prompt as a template; (None, None) without."""
        text = self._get(self.promptTemplate)
        if not text:
            return None, None
        system = self._system_prompt()
        return Template.parse(text), Template.parse(system, "systemPrompt") if system else None

    def _inputs(self, schema: StructType) -> Inputs:
        inputs, media = self._text_inputs(schema), self._media()
        if media is None:
            return inputs
        if media.image_key:
            image_type = require_column(schema, media.image_key, "imageCol")
            if not isinstance(image_type, (BinaryType, StringType)):
                raise ConfigurationError(
                    f"imageCol: column {media.image_key!r} is {image_type.simpleString()}, not binary or string"
                )
        if media.file_key:
            file_type = require_column(schema, media.file_key, "fileCol")
            if not isinstance(file_type, BinaryType):
                message = f"fileCol: column {media.file_key!r} is {file_type.simpleString()}, not binary"
                raise ConfigurationError(message)
        return Inputs(tuple(dict.fromkeys(inputs.columns + media.columns)), as_rows=True)

    def _media(self) -> Media | None:
        """Where each row's image and PDF are (``imageCol``, ``fileCol``), or None without media."""
        image, file = self._get(self.imageCol) or None, self._get(self.fileCol) or None
        if image is None and file is None:
            return None
        max_bytes = self.getOrDefault(self.maxInputBytes)
        if max_bytes < 1:
            raise ConfigurationError(f"maxInputBytes must be at least 1, got {max_bytes}")
        prompt = None
        if not self._get(self.promptTemplate):  # a template reads the row's fields; else one column is the text
            prompt = self._get(self.promptCol) or self._get(self.messagesCol) or "prompt"
        names = [n for n in (prompt, image, file) if n]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"imageCol and fileCol must name other columns than the prompt's, got {names}")
        return Media(prompt, image, file, max_bytes)

    def _text_inputs(self, schema: StructType) -> Inputs:
        template, system = self._templates()
        if template is None:
            return super()._inputs(schema)
        if self._get(self.promptCol) or self._get(self.messagesCol):
            raise ConfigurationError("set exactly one of promptCol and messagesCol (or promptTemplate)")
        columns = require_template_columns(schema, template, "promptTemplate")
        if system is not None:
            columns += require_template_columns(schema, system, "systemPrompt")
        return Inputs(tuple(dict.fromkeys(columns)), as_rows=True)

    def _system_prompt(self) -> str | None:
        return self._get(self.systemPrompt)

    def _structured_output(self) -> StructuredOutput | None:
        """The typed output asked for (``outputSchema``), or None for text."""
        text = self._get(self.outputSchema)
        if not text:
            return None
        if self._get(self.responseFormat):
            raise ConfigurationError("set outputSchema or responseFormat, not both (outputSchema makes the format)")
        return output_from(text)

    def _request_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for param_name, field in self._REQUEST_OPTIONS:
            value = self._get(self.getParam(param_name))
            if value is not None:
                options[field] = value
        if "temperature" in options and not 0 <= options["temperature"] <= 2:
            raise ConfigurationError(f"temperature must be between 0 and 2, got {options['temperature']}")
        if "top_p" in options and not 0 <= options["top_p"] <= 1:
            raise ConfigurationError(f"topP must be between 0 and 1, got {options['top_p']}")
        if "max_tokens" in options and "max_completion_tokens" in options:
            raise ConfigurationError("set maxTokens or maxCompletionTokens, not both")
        for name in ("max_tokens", "max_completion_tokens"):
            if name in options and options[name] < 1:
                raise ConfigurationError(
                    f"{'maxTokens' if name == 'max_tokens' else 'maxCompletionTokens'} must be >= 1"
                )
        response_format = self._get(self.responseFormat)
        if response_format:
            parsed = json.loads(response_format)
            check_response_format(parsed)
            options["response_format"] = parsed
        extra = self._get(self.extraBody)
        if extra:
            options.update(json.loads(extra))
        return options

    def _reasoning_options(self, options: dict[str, Any], deployment: str) -> dict[str, Any]:
        """Map options for a reasoning model: ``maxTokens`` is ``max_completion_tokens``, sampling is not sent."""
        reasoning = self._get(self.reasoningModel)
        if reasoning is None:
            reasoning = is_reasoning_deployment(deployment)
        effort, verbosity = self._get(self.reasoningEffort), self._get(self.verbosity)
        if effort is not None and effort not in REASONING_EFFORTS:
            raise ConfigurationError(f"reasoningEffort must be one of {', '.join(REASONING_EFFORTS)}, got {effort!r}")
        if verbosity is not None and verbosity not in VERBOSITIES:
            raise ConfigurationError(f"verbosity must be one of {', '.join(VERBOSITIES)}, got {verbosity!r}")
        if not reasoning:
            if effort is not None or verbosity is not None:
                raise ConfigurationError(
                    f"reasoningEffort and verbosity are for reasoning models; deployment {deployment!r} is not one "
                    "by its name (set reasoningModel=True if it is)"
                )
            return options
        mapped = dict(options)
        if "max_tokens" in mapped:
            mapped["max_completion_tokens"] = mapped.pop("max_tokens")
        dropped = [name for name in ("temperature", "top_p") if mapped.pop(name, None) is not None]
        if dropped:
            logger.warning(
                "spark_aoai: %s is a reasoning model, which takes only the default sampling: not sending %s",
                deployment,
                " and ".join(dropped),
            )
        if effort is not None:
            mapped["reasoning_effort"] = effort
        if verbosity is not None:
            mapped["verbosity"] = verbosity
        return mapped

    def _operation(self, config: ClientConfig) -> Operation:
        api = self.getOrDefault(self.apiType)
        if api not in API_TYPES:
            raise ConfigurationError(f"apiType must be one of {', '.join(API_TYPES)}, got {api!r}")
        options = self._reasoning_options(self._request_options(), config.deployment)
        if api == "responses":
            unsupported = sorted(set(options) & set(responses_wire.UNSUPPORTED))
            if unsupported:
                raise ConfigurationError(f"the Responses API (apiType='responses') does not take {unsupported}")
        retries = self.getOrDefault(self.outputRetries)
        if retries < 0:
            raise ConfigurationError(f"outputRetries must be 0 or more, got {retries}")
        template, system_template = self._templates()
        operation = ChatOperation(
            model=None,
            system_prompt=self._system_prompt(),
            options=options,
            api=api,
            template=template,
            system_template=system_template,
            null_placeholder=self._get(self.nullPlaceholder),
            structured=self._structured_output(),
            output_retries=retries,
            media=self._media(),
        )
        operation = replace(operation, model=config.endpoint.model_for(operation.route, config.deployment))
        if self._batch_mode():
            return operation  # one row per request line: packing is for online throughput (ignored, warned)
        rows, tokens = self.getOrDefault(self.rowsPerRequest), self.getOrDefault(self.maxPackTokens)
        if operation.media is not None and rows != 1:  # a row's media must never reach another row's answer
            raise ConfigurationError("rowsPerRequest: rows with imageCol or fileCol are not packed; set it to 1")
        return packed(operation, rows, tokens, bool(self._get(self.messagesCol)))


class Embedding(UsageMethods, BatchMethods, AzureOpenAIStage, HasEmbeddingRequest, HasUsageControls):
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

    _stage_defaults: ClassVar[dict[str, Any]] = {"outputCol": "embedding", "concurrency": C.EMBEDDING_CONCURRENCY}

    def _input_column(self, schema: StructType) -> str:
        name = self._get(self.inputCol)
        require_string(require_column(schema, name, "inputCol"), name, "inputCol")
        return str(name)

    def _check(self) -> None:
        batch_size = self.getOrDefault(self.batchSize)
        if not 1 <= batch_size <= C.MAX_EMBEDDING_INPUTS:
            raise ConfigurationError(f"batchSize must be between 1 and {C.MAX_EMBEDDING_INPUTS}, got {batch_size}")
        if self.getOrDefault(self.maxBatchTokens) < 1:
            raise ConfigurationError("maxBatchTokens must be at least 1")
        if self.getOrDefault(self.dimensions) < 0:
            raise ConfigurationError("dimensions must be positive (or 0 for the model's size)")
        if self.getOrDefault(self.outputType) not in ("array", "vector"):
            raise ConfigurationError("outputType must be 'array' or 'vector'")

    def _vector_output(self) -> bool:
        return bool(self.getOrDefault(self.outputType) == "vector")

    def _operation(self, config: ClientConfig) -> Operation:
        self._check()
        route = EmbeddingOperation.route
        operation = EmbeddingOperation(
            model=config.endpoint.model_for(route, config.deployment),
            dimensions=self.getOrDefault(self.dimensions) or None,
            batch_size=self.getOrDefault(self.batchSize),
            max_batch_tokens=self.getOrDefault(self.maxBatchTokens),
        )
        if self._batch_mode():
            # one text per line, and no state across a task's batches: a line's custom_id then depends on its
            # text alone, so the answer pass finds it whatever the order or the Arrow batches of the partition
            return replace(operation, batch_size=1, cache_bytes=0)
        return operation

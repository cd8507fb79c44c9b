"""pyspark.ml Transformers: ``ChatCompletion`` and ``Embedding``.

Both add an output column and an error column (plus optional usage / finish-reason columns), keep every
input row and column, and save/load like any pyspark.ml stage. Their Params come from the mixins in
``_params``; what runs on the executors comes from ``_stage``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql.types import BinaryType, StringType, StructType

from spark_aoai._client.config import ClientConfig
from spark_aoai._core import constants as C
from spark_aoai._core.contract import Operation
from spark_aoai._engine.plan import Inputs
from spark_aoai._planning.operations import ChatOperation, EmbeddingOperation
from spark_aoai._planning.packing import packed
from spark_aoai._planning.param_values import ONE_PROMPT_SOURCE, is_reasoning_deployment, not_for_this_model
from spark_aoai._planning.schemas import output_from
from spark_aoai._planning.structured import StructuredOutput
from spark_aoai._planning.template import Template
from spark_aoai._spark.batch_job import BatchMethods
from spark_aoai._spark.cascade_stage import CascadeMethods, HasCascade
from spark_aoai._spark.params import (
    HasChatRequest,
    HasEmbeddingRequest,
    HasMedia,
    HasPacking,
    HasReasoning,
    HasStructuredOutput,
    HasUsageControls,
)
from spark_aoai._spark.spark_types import (
    MESSAGES_TYPE_HINT,
    is_messages_type,
    require_column,
    require_string,
    require_template_columns,
)
from spark_aoai._spark.stage import AzureOpenAIStage
from spark_aoai._spark.usage import UsageMethods
from spark_aoai._wire import responses as responses_wire
from spark_aoai._wire.media import Media
from spark_aoai.exceptions import ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from spark_aoai._spark.accessors import ChatCompletionKwargs, EmbeddingKwargs

logger = logging.getLogger("spark_aoai")


class ChatCompletion(
    CascadeMethods,
    UsageMethods,
    BatchMethods,
    AzureOpenAIStage,
    HasChatRequest,
    HasReasoning,
    HasUsageControls,
    HasStructuredOutput,
    HasPacking,
    HasMedia,
    HasCascade,
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

    def __init__(self, **kwargs: Unpack[ChatCompletionKwargs]) -> None:
        super().__init__(**kwargs)

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
            raise ConfigurationError(ONE_PROMPT_SOURCE)
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
            raise ConfigurationError(ONE_PROMPT_SOURCE)
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
        return output_from(text)

    def _request_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for param_name, field in self._REQUEST_OPTIONS:
            value = self._get(self.getParam(param_name))
            if value is not None:
                options[field] = value
        response_format = self._get(self.responseFormat)
        if response_format:  # checked when set (_param_values.response_format)
            options["response_format"] = json.loads(response_format)
        extra = self._get(self.extraBody)
        if extra:
            options.update(json.loads(extra))
        return options

    def _reasoning_options(self, options: dict[str, Any], deployment: str) -> dict[str, Any]:
        """Map options for a reasoning model: ``maxTokens`` is ``max_completion_tokens``, sampling is not sent."""
        reasoning = self._get(self.reasoningModel)
        effort, verbosity = self._get(self.reasoningEffort), self._get(self.verbosity)
        problem = not_for_this_model(deployment, reasoning, effort, verbosity)
        if problem:
            raise ConfigurationError(problem)
        if not (is_reasoning_deployment(deployment) if reasoning is None else reasoning):
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
        options = self._reasoning_options(self._request_options(), config.deployment)
        if api == "responses":
            unsupported = sorted(set(options) & set(responses_wire.UNSUPPORTED))
            if unsupported:
                raise ConfigurationError(f"the Responses API (apiType='responses') does not take {unsupported}")
        retries = self.getOrDefault(self.outputRetries)
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

    def __init__(self, **kwargs: Unpack[EmbeddingKwargs]) -> None:
        super().__init__(**kwargs)

    _stage_defaults: ClassVar[dict[str, Any]] = {"outputCol": "embedding", "concurrency": C.EMBEDDING_CONCURRENCY}

    def _input_column(self, schema: StructType) -> str:
        name = self._get(self.inputCol)
        require_string(require_column(schema, name, "inputCol"), name, "inputCol")
        return str(name)

    def _vector_output(self) -> bool:
        return bool(self.getOrDefault(self.outputType) == "vector")

    def _operation(self, config: ClientConfig) -> Operation:
        route = EmbeddingOperation.route
        operation = EmbeddingOperation(
            model=config.endpoint.model_for(route, config.deployment),
            dimensions=self._get(self.dimensions) or None,
            batch_size=self.getOrDefault(self.batchSize),
            max_batch_tokens=self.getOrDefault(self.maxBatchTokens),
        )
        if self._batch_mode():
            # one text per line, and no state across a task's batches: a line's custom_id then depends on its
            # text alone, so the answer pass finds it whatever the order or the Arrow batches of the partition
            return replace(operation, batch_size=1, cache_bytes=0)
        return operation

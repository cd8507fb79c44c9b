"""The Params of batch mode (``mode="batch"``): where its manifests live, how long to wait, file limits."""

from __future__ import annotations

from typing import Any, ClassVar

from pyspark.ml.param import TypeConverters

from spark_aoai._core import constants as C
from spark_aoai._planning.param_values import choice, real, whole
from spark_aoai._spark.accessors import HasBatchAccessors
from spark_aoai._spark.params import _param

MODES = ("online", "batch")


class HasBatch(HasBatchAccessors):
    """Online requests (the default) or Azure's Batch API: half the price, answers within 24 hours."""

    mode = _param(
        "mode", "online (requests as the job runs) | batch (Azure's Batch API: JSONL files, answers within 24 h)",
        choice("mode", MODES),
    )  # fmt: skip
    batchDir = _param(
        "batchDir",
        "batch mode: directory of the job manifests (a local or FUSE path, or an fsspec URI), which make a "
        "restarted job pick up its batches instead of submitting again",
        TypeConverters.toString,
    )
    batchTimeoutHours = _param(
        "batchTimeoutHours", "batch mode: hours transform waits before cancelling; unanswered rows are batch_expired",
        real("batchTimeoutHours", 0, above=True),
    )  # fmt: skip
    batchPollSeconds = _param(
        "batchPollSeconds",
        "batch mode: the longest wait between two polls of the batches",
        real("batchPollSeconds", 0, above=True),
    )
    batchMaxLinesPerFile = _param(
        "batchMaxLinesPerFile",
        "batch mode: requests per input file (Azure's limit: 100,000)",
        whole("batchMaxLinesPerFile", 1, C.BATCH_MAX_LINES_PER_FILE),
    )
    batchMaxBytesPerFile = _param(
        "batchMaxBytesPerFile",
        "batch mode: bytes per input file (Azure's limit: 200 MB)",
        whole("batchMaxBytesPerFile", 1, C.BATCH_MAX_BYTES_PER_FILE),
    )
    _param_defaults: ClassVar[dict[str, Any]] = {
        "mode": "online",
        "batchTimeoutHours": C.BATCH_TIMEOUT_HOURS,
        "batchPollSeconds": C.BATCH_POLL_SECONDS,
        "batchMaxLinesPerFile": C.BATCH_MAX_LINES_PER_FILE,
        "batchMaxBytesPerFile": C.BATCH_MAX_BYTES_PER_FILE,
    }

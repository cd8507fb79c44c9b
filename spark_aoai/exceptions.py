"""Exceptions raised by spark_aoai.

Errors from the service never raise by default: they become values in the error column. What raises is::

    SparkAOAIError
     ├── ConfigurationError   bad settings or input columns, raised on the driver before any job runs
     └── RequestFailedError   a row failed and the user asked for fail-fast (``failOnError=True``)
"""

from __future__ import annotations


class SparkAOAIError(Exception):
    """Base class of everything spark_aoai raises."""


class ConfigurationError(SparkAOAIError, ValueError):
    """A setting, credential or input column is missing or wrong; the message names it."""


class RequestFailedError(SparkAOAIError):
    """A row failed while ``failOnError`` was set; carries the row's error value (no secrets)."""

    def __init__(self, error: dict[str, object]) -> None:
        self.error = error
        super().__init__(
            f"Azure OpenAI request failed (status={error.get('status')}, code={error.get('code')}, "
            f"attempts={error.get('attempts')}): {error.get('message')}"
        )

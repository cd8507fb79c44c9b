"""Exceptions raised by spark_aoai.

Errors from the service never raise by default: they become values in the error column. What raises is::

    SparkAOAIError
     ├── ConfigurationError   bad settings or input columns, raised on the driver before any job runs
     ├── RequestFailedError   a row failed and the user asked for fail-fast (``failOnError=True``)
     └── SystemicError        every row would fail the same way (bad key, unknown deployment, nothing
                              listening): the task stops sending and fails (``onSystemicError="fail"``)

On Spark the last two are raised inside a task and reach the driver wrapped in Spark's own exception;
``failure_of(exc)`` finds the row error in it, ``systemic_of(exc)`` the ``SystemicError`` itself (its first
line says what to change; see the README's "Errors" section).
"""

from __future__ import annotations

import json
from typing import Any

from spark_aoai._core.fixes import headline

_MARK = "[spark_aoai error "
_SYSTEMIC = "SystemicError: "


class SparkAOAIError(Exception):
    """Base class of everything spark_aoai raises."""


class ConfigurationError(SparkAOAIError, ValueError):
    """A setting, credential or input column is missing or wrong; the message names it."""


def _error_fields(error: Any) -> dict[str, Any]:
    return dict(error.as_dict()) if hasattr(error, "as_dict") else dict(error)


class RequestFailedError(SparkAOAIError):
    """A row failed while ``failOnError`` was set; carries the row's error value (no secrets)."""

    def __init__(self, error: Any, failed_rows: int = 1, rows_before: int = 0) -> None:
        self.error = error
        fields = _error_fields(error)
        super().__init__(
            f"{fields.get('code')} (status {fields.get('status')}): {fields.get('message')} - {failed_rows} row(s) "
            f"failed in a batch after {rows_before} row(s) of this task; attempts={fields.get('attempts')} "
            f"{_MARK}{json.dumps(fields)}]"
        )


class SystemicError(SparkAOAIError):
    """Every row of the task would fail the same way. The message starts with what failed, where (host and
    deployment) and the setting that fixes it (``_fixes.headline``), then the service's status, code and message."""

    def __init__(self, error: Any, where: str) -> None:
        self.error = error
        fields = _error_fields(error)
        super().__init__(
            f"{headline(fields, where)} - no further requests were sent; set onSystemicError='mark' to mark the "
            f"rows instead {_MARK}{json.dumps(fields)}]"
        )

    @classmethod
    def _rebuilt(cls, message: str, fields: dict[str, Any]) -> SystemicError:
        error = cls.__new__(cls)
        error.error = fields
        Exception.__init__(error, message)
        return error


def failure_of(exc: BaseException) -> dict[str, Any] | None:
    """The row error (a dict with status, code, message, attempts, request_id) inside an exception that a
    failed Spark job raised on the driver, or None when it did not come from spark_aoai.

    >>> try:
    ...     out.collect()  # doctest: +SKIP
    ... except Exception as exc:
    ...     error = failure_of(exc)  # {'status': 401, 'code': '401', ...}  # doctest: +SKIP
    """
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, (RequestFailedError, SystemicError)):
            return _error_fields(current.error)
        text = str(current)
        start = text.find(_MARK)
        if start >= 0:
            try:
                fields, _ = json.JSONDecoder().raw_decode(text, start + len(_MARK))
                return dict(fields)
            except ValueError:
                pass
        current = current.__cause__ or current.__context__
    return None


def systemic_of(exc: BaseException) -> SystemicError | None:
    """The ``SystemicError`` a failed Spark action carries (raised in a task, wrapped by Spark on the driver:
    ``PythonException``, ``Py4JJavaError``, Connect's ``SparkConnectGrpcException``), or None.

    >>> try:
    ...     out.collect()  # doctest: +SKIP
    ... except Exception as exc:
    ...     raise systemic_of(exc) or exc  # "the credential was refused (401) at ...: pass the right apiKey ..."
    """
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, SystemicError):
            return current
        text = str(current)
        start = text.find(_SYSTEMIC)
        fields = failure_of(current) if start >= 0 else None
        if fields is not None:
            line = text[start + len(_SYSTEMIC) :].split("\n", 1)[0]
            return SystemicError._rebuilt(line, fields)
        current = current.__cause__ or current.__context__
    return None

"""Retry policy: pure functions, table-driven."""

from __future__ import annotations

import random

import pytest

from spark_aoai._client.retry import RetryPolicy, backoff_delay, parse_retry_after, retry_delay, should_retry


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, "429", True),
        (408, "x", True),
        (409, "x", True),
        (500, "InternalServerError", True),
        (502, "x", True),
        (503, "ServiceUnavailable", True),
        (504, "x", True),
        (400, "content_filter", False),
        (400, "context_length_exceeded", False),
        (401, "401", False),
        (403, "x", False),
        (404, "404", False),
        (None, "timeout", True),
        (None, "connection_error", True),
        (200, "malformed_response", True),
        (None, "client_error", False),
        (None, "tls_error", False),
    ],
)
def test_should_retry(status, code, expected):
    assert should_retry(status, code) is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),
        ({"Retry-After-Ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "junk", "retry-after": "4"}, 4.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "-1"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(headers, now) == expected


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 0.25, 0.75), (2, 0.5, 1.5), (3, 1.0, 3.0), (20, 15.0, 45.0)])
def test_backoff_grows_exponentially_with_jitter_and_a_cap(attempt, low, high):
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    delays = [backoff_delay(attempt, policy, random.Random(seed)) for seed in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1


def test_retry_delay_prefers_the_service_header():
    policy = RetryPolicy()
    assert retry_delay(5, 0.1, policy, random.Random(0)) == 0.1
    assert retry_delay(5, 86400.0, policy, random.Random(0)) == policy.max_retry_after  # never beyond the cap
    assert 0.25 <= retry_delay(1, None, policy, random.Random(0)) <= 0.75


class _Conf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


class _Session:
    def __init__(self, values: dict[str, str]) -> None:
        self.conf = _Conf(values)


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"spark.master": "local[4]"}, 4),
        ({"spark.master": "local[2,3]"}, 2),
        ({"spark.master": "local"}, 1),
        ({"spark.master": "spark://h:7077", "spark.executor.instances": "3", "spark.executor.cores": "4"}, 12),
        (
            {
                "spark.master": "yarn",
                "spark.executor.instances": "2",
                "spark.executor.cores": "4",
                "spark.task.cpus": "2",
            },
            4,
        ),
        ({"spark.master": "yarn", "spark.default.parallelism": "16"}, 16),
        ({}, 1),
    ],
)
def test_concurrent_tasks_from_the_spark_configuration(conf, expected):
    from spark_aoai._spark.stage import infer_concurrent_tasks

    assert infer_concurrent_tasks(_Session(conf)) == expected  # type: ignore[arg-type]


def test_every_error_code_says_whether_another_attempt_may_cure_it():
    from spark_aoai._client.retry import TRANSPORT_CODES
    from spark_aoai._core.contract import RETRY_BY_CODE, ErrorCode, retryable_codes
    from spark_aoai._spark.rerun import RETRYABLE_CODES

    assert set(RETRY_BY_CODE) == set(ErrorCode)
    assert TRANSPORT_CODES == retryable_codes(later=False) == {
        "timeout", "connection_error", "malformed_response", "credential_error",
    }  # fmt: skip
    assert set(RETRYABLE_CODES) == retryable_codes(later=True) == TRANSPORT_CODES | {
        "quota_exceeded", "budget_exhausted", "internal_error", "batch_failed", "batch_expired", "batch_cancelled",
    }  # fmt: skip
    assert should_retry(None, ErrorCode.TIMEOUT) and not should_retry(None, ErrorCode.QUOTA_EXCEEDED)


def test_one_list_of_retryable_statuses_online_in_batch_calls_and_in_retry_failed():
    from spark_aoai._batch.service import may_pass
    from spark_aoai._client.retry import RETRYABLE_STATUS

    retried = {status for status in range(100, 600) if should_retry(status, None)}
    assert retried == RETRYABLE_STATUS == {408, 409, 429, *range(500, 600)}
    assert retried == {status for status in range(100, 600) if may_pass(status)}  # a batch creation's rule

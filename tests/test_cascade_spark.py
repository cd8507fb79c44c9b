"""Model cascades on a local Spark session against the emulator: the target met against the emulator's ground
truth, the cost reported from billed tokens, extraction with packing and the cache, and configuration refused
on the driver."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest

from spark_aoai import ChatCompletion, ai
from spark_aoai.emulator import Emulator, Faults
from spark_aoai.emulator._labels import pick_label
from spark_aoai.emulator._semantic import holds
from spark_aoai.exceptions import ConfigurationError

LABELS = ["bug", "feature", "question", "billing"]
WORDS = ["crashes", "please add an option", "how do I", "refund, I was charged twice", "export", "login fails"]
CASCADE = ["gpt-4.1-nano", "gpt-4.1"]


def tickets(spark, n: int):
    rows = [(i, f"ticket {i}: {WORDS[i % 6]} and {WORDS[(i * 7 + 3) % 6]} on page {i % 89}") for i in range(n)]
    return spark.createDataFrame(rows, "id int, text string").repartition(2)


def connection(emulator) -> dict:
    return {"endpoint": emulator.endpoint, "apiKey": "k", "concurrency": 48}


def test_classification_meets_the_target_with_most_rows_cheap_and_reports_billed_cost(spark, emulator):
    emulator.configure(faults=Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.9, seed=3))
    n = 1500
    stage = ai.classify("text", labels=LABELS, cascadeDeployments=CASCADE, cascadeSampleSize=400,
                        cascadeCol="cascade", usageCol="usage", **connection(emulator))  # fmt: skip
    out = stage.transform(tickets(spark, n)).cache()
    rows = out.collect()
    assert len(rows) == n and sorted(r["id"] for r in rows) == list(range(n))
    assert all(r["error"] is None for r in rows)
    agreement = sum(r["label"] == pick_label(LABELS, r["text"]) for r in rows) / n  # the final model's answer
    cheap = [r for r in rows if r["cascade"]["deployment"] == "gpt-4.1-nano"]
    assert agreement >= 0.95 and len(cheap) >= n / 2
    assert all(r["cascade"]["confidence"] >= r["cascade"]["threshold"] for r in cheap)
    assert {r["cascade"]["method"] for r in rows} == {"logprobs"}
    stats = stage.statistics()
    report = stats.cascade
    assert report is not None
    assert [level["rows"] for level in report["levels"]] == [len(cheap), n - len(cheap)]
    assert report["levels"][0]["threshold"] == rows[0]["cascade"]["threshold"]
    # the cost is the billed tokens at each level's price, and those tokens are what the rows and the sample paid
    assert report["cost"] == pytest.approx(sum(level["cost"] for level in report["levels"]))
    billed = sum(r["usage"]["total_tokens"] for r in rows) + sum(report["sample"]["tokens"])
    assert stats.total_tokens == billed == sum(level["total_tokens"] for level in report["levels"])
    assert report["final_only_cost"] > report["cost"]
    assert report["saving"] == pytest.approx(1 - report["cost"] / report["final_only_cost"])
    low, high = report["sample"]["interval"]
    assert low < report["sample"]["agreement"] < high and 0.7 < report["sample"]["agreement"] < 0.9
    assert "cascade (target 0.95" in str(stats)


def test_without_signal_every_row_goes_to_the_final_model(spark, emulator):
    emulator.configure(faults=Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.0, seed=5))
    n = 600
    stage = ai.classify("text", labels=LABELS, cascadeDeployments=CASCADE, cascadeSampleSize=300,
                        cascadeCol="cascade", **connection(emulator))  # fmt: skip
    rows = stage.transform(tickets(spark, n)).collect()
    final = [r for r in rows if r["cascade"]["deployment"] == "gpt-4.1"]
    assert len(final) == n  # the cheap level keeps nothing, so it is not asked in the routed pass
    assert sum(r["label"] == pick_label(LABELS, r["text"]) for r in rows) / n >= 0.95
    report = stage.statistics().cascade
    assert report["calibration"][0]["threshold"] is None
    assert [level["requests"] for level in report["levels"]] == [300, 300 + n]  # the sample, then every row


def test_filter_meets_the_target_with_most_rows_cheap(spark, emulator):
    emulator.configure(faults=Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.9, seed=4))
    n, condition = 1500, "asks for a refund"
    stage = ai.filter("text", condition, cascadeDeployments=CASCADE, cascadeSampleSize=400, cascadeCol="cascade",
                      **connection(emulator))  # fmt: skip
    rows = stage.transform(tickets(spark, n)).collect()
    assert len(rows) == n and sorted(r["id"] for r in rows) == list(range(n))
    assert all(r["error"] is None and isinstance(r["keep"], bool) for r in rows)
    truth = {r["id"]: holds(condition, r["text"]) for r in rows}  # the final model's answer
    assert 0.2 < sum(truth.values()) / n < 0.5  # both answers are common
    agreement = sum(r["keep"] == truth[r["id"]] for r in rows) / n
    cheap = [r for r in rows if r["cascade"]["deployment"] == "gpt-4.1-nano"]
    assert agreement >= 0.95 and len(cheap) >= n / 2, (agreement, len(cheap))
    assert all(r["cascade"]["confidence"] >= r["cascade"]["threshold"] for r in cheap)
    report = stage.statistics().cascade
    assert [level["rows"] for level in report["levels"]] == [len(cheap), n - len(cheap)]
    assert 0.7 < report["sample"]["agreement"] < 0.9  # the cheap model alone would miss the target


def test_without_logprobs_a_second_answer_scores_by_agreement(spark, emulator):
    conn, n = connection(emulator), 1000
    df = tickets(spark, n)
    # a cheap model wrong on 5% of rows, unsure of all of them: two of its answers disagree more often there
    emulator.configure(faults=Faults(cheap_wrong_rate=0.05, cheap_confidence_correlation=1.0, cheap_logprobs=False,
                                     seed=1))  # fmt: skip
    stage = ai.classify("text", labels=LABELS, cascadeDeployments=CASCADE, cascadeSampleSize=500,
                        cascadeCol="cascade", usageCol="usage", **conn)  # fmt: skip
    rows = stage.transform(df).collect()
    assert len(rows) == n and all(r["error"] is None for r in rows)
    assert {r["cascade"]["method"] for r in rows} == {"agreement"}
    assert {r["cascade"]["confidence"] for r in rows} <= {0.0, 1.0}
    right = {r["id"]: r["label"] == pick_label(LABELS, r["text"]) for r in rows}
    cheap = [r for r in rows if r["cascade"]["deployment"] == "gpt-4.1-nano"]
    assert sum(right.values()) / n >= 0.95 and len(cheap) >= n / 2, (sum(right.values()), len(cheap))
    assert all(r["cascade"]["confidence"] == 1.0 for r in cheap)
    report = stage.statistics().cascade
    assert report["sample"]["methods"] == {"agreement": 500}
    kept = sum(right[r["id"]] for r in cheap) / len(cheap)
    assert kept > report["sample"]["agreement"]  # the rows kept agree more often than the cheap model does
    # the cheap deployment answered each row twice, in the sample pass and in the routed pass
    assert [level["requests"] for level in report["levels"]] == [2 * (500 + n), 500 + n - len(cheap)]
    # the cheap model wrong on 20%: agreement cannot show 95%, every row goes to the final model
    emulator.configure(faults=Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.9, cheap_logprobs=False,
                                     seed=5))  # fmt: skip
    rows = stage.transform(df).collect()
    assert {r["cascade"]["deployment"] for r in rows} == {"gpt-4.1"}
    assert all(r["label"] == pick_label(LABELS, r["text"]) for r in rows)
    report = stage.statistics().cascade
    assert report["calibration"][0]["threshold"] is None
    # a level that keeps no row is not asked in the routed pass: only the sample's two answers were paid for
    assert [level["requests"] for level in report["levels"]] == [2 * 500, 500 + n]


@pytest.mark.parametrize("fault", ["connection refused", "404 DeploymentNotFound", "429 retry-after 1"])
def test_a_cheap_level_fails_over_and_still_meets_the_target(spark, emulator, fault):
    faults = Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.9, seed=3)
    emulator.configure(faults=faults)
    with Emulator() as gone:
        dead = gone.endpoint
    n = 600
    refusing = replace(faults, quota_429_rate=1.0, quota_retry_after_seconds=1)
    with Emulator(faults=faults) as spare, Emulator(faults=refusing) as limited:
        primary = {
            "connection refused": {"deploymentName": "gpt-4.1-nano", "endpoint": dead},
            "404 DeploymentNotFound": {"deploymentName": "no-such-deployment"},
            "429 retry-after 1": {"deploymentName": "gpt-4.1-nano", "endpoint": limited.endpoint},
        }[fault]
        levels = [[primary, {"deploymentName": "gpt-4o-mini", "endpoint": spare.endpoint, "apiKey": "spare-key-01"}],
                  "gpt-4.1"]  # fmt: skip
        stage = ai.classify("text", labels=LABELS, cascadeDeployments=levels, cascadeSampleSize=300,
                            cascadeCol="cascade", deploymentCol="answered_by", **connection(emulator))  # fmt: skip
        started = time.monotonic()
        out = stage.transform(tickets(spark, n))  # the sample pass runs here
        spare.reset_stats()
        rows = out.collect()
        answered = Counter(spare.stats()["answered_inputs"])
    assert time.monotonic() - started < 90
    assert len(rows) == n and sorted(r["id"] for r in rows) == list(range(n))
    assert all(r["error"] is None for r in rows)
    assert len(answered) == n and set(answered.values()) == {1}  # the spare answered each row once
    assert sum(r["label"] == pick_label(LABELS, r["text"]) for r in rows) / n >= 0.95
    cheap = [r for r in rows if r["cascade"]["deployment"] == primary["deploymentName"]]  # the level's name
    assert len(cheap) >= n / 2 and {r["answered_by"] for r in cheap} == {"gpt-4o-mini"}
    assert {r["answered_by"] for r in rows if r not in cheap} == {"gpt-4.1"}


def test_extraction_with_packing_cascades_field_by_field_and_a_rerun_reads_the_cache(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.9, seed=11))
    n = 500
    df = tickets(spark, n)
    conn = connection(emulator)
    truth = ai.extract("text", fields=["product", "page"], deploymentName="gpt-4.1", outputCol="truth",
                       errorCol="truth_error", **conn).transform(df).select("id", "truth")  # fmt: skip
    expected = {r["id"]: r["truth"] for r in truth.collect()}
    stage = ai.extract("text", fields=["product", "page"], cascadeDeployments=CASCADE, cascadeSampleSize=300,
                       cascadeCol="cascade", rowsPerRequest=5, cacheDir=str(tmp_path), **conn)  # fmt: skip
    first = {r["id"]: r for r in stage.transform(df).collect()}
    assert len(first) == n and all(r["error"] is None for r in first.values())
    assert sum(first[i]["extracted"] == expected[i] for i in first) / n >= 0.95
    assert sum(r["cascade"]["deployment"] == "gpt-4.1-nano" for r in first.values()) >= n / 2
    assert stage.statistics().cascade["sample"]["disagreeing_fields"]  # which fields the cheap model got wrong
    emulator.reset_stats()
    again = {r["id"]: r for r in stage.transform(df).collect()}
    assert sum(emulator.stats()["requests"].values()) == 0  # both passes, both levels: read from the cache
    assert {i: (r["extracted"], r["cascade"]["deployment"]) for i, r in again.items()} == {
        i: (r["extracted"], r["cascade"]["deployment"]) for i, r in first.items()
    }


def test_settings_refused_on_the_driver_and_credentials_kept_out_of_the_param():
    with pytest.raises(ConfigurationError, match="replaces deploymentName"):
        ChatCompletion(promptCol="p", deploymentName="gpt-4.1", cascadeDeployments=CASCADE)
    with pytest.raises(ConfigurationError, match="two or more"):
        ChatCompletion(promptCol="p", cascadeDeployments=["gpt-4.1"])
    with pytest.raises(ConfigurationError, match="reasoning model"):
        ChatCompletion(promptCol="p", cascadeDeployments=["o4-mini", "gpt-4.1"])
    with pytest.raises(ConfigurationError, match="'o4-mini' is a reasoning model"):  # a cheap level's spare
        ChatCompletion(promptCol="p", cascadeDeployments=[["gpt-4.1-nano", "o4-mini"], "gpt-4.1"])
    with pytest.raises(ConfigurationError, match=r"cascadeDeployments runs online.*mode=.online"):
        ChatCompletion(promptCol="p", cascadeDeployments=CASCADE, mode="batch", batchDir="/tmp/x")
    with pytest.raises(ConfigurationError, match="cascadeTarget"):
        ChatCompletion(promptCol="p", cascadeDeployments=CASCADE, cascadeTarget=1.5)
    stage = ChatCompletion(promptCol="p", cascadeDeployments=[{"deploymentName": "gpt-4.1-nano", "apiKey": "s3cret"},
                                                              ["gpt-4.1", "gpt-4o"]])  # fmt: skip
    assert "s3cret" not in stage.getCascadeDeployments() and "gpt-4o" in stage.getCascadeDeployments()
    with pytest.raises(ConfigurationError, match="transform"):
        stage._udf_plan()


def test_one_spend_cap_for_every_level_and_pass(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(cheap_wrong_rate=0.2, cheap_confidence_correlation=0.9, seed=2))
    cap = 45_000  # the sample pass (2 x 300 requests) takes most of it; the routed pass runs out
    conn = {**connection(emulator), "concurrency": 4}
    stage = ai.classify("text", labels=LABELS, cascadeDeployments=CASCADE, cascadeSampleSize=300, maxTotalTokens=cap,
                        statisticsDir=str(tmp_path), usageCol="usage", **conn)  # fmt: skip
    rows = stage.transform(tickets(spark, 600)).collect()
    assert len(rows) == 600
    refused = [r for r in rows if r["error"] is not None]
    assert refused and {r["error"]["code"] for r in refused} == {"budget_exhausted"}
    stats = stage.statistics()
    assert cap - 2_000 <= stats.total_tokens <= cap + 2 * 4 * 200  # levels add up against one ledger

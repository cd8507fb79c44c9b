"""The examples run as documented: the quickstart as a user runs it, the others on the shared session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


def test_quickstart_runs_against_the_emulator():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_OPENAI")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "using the spark_aoai emulator" in out
    assert "Q: Does Azure OpenAI support customer managed keys?" in out
    assert "Emulated answer to: Does Azure OpenAI support customer managed keys?" in out
    assert "(1536 dimensions)" in out
    assert "invalid_input: the prompt is null" in out


def test_chat_over_table(spark, emulator):
    from chat_over_table import REVIEWS, classify_reviews

    rows = classify_reviews(spark, emulator.endpoint).orderBy("review_id").collect()
    assert len(rows) == len(REVIEWS)
    assert [r.label.sentiment for r in rows[:-1]] == ["positive", "negative", "neutral", "positive"]
    assert rows[-1].error.code == "invalid_input"
    assert all(json.loads(r.answer)["summary"] for r in rows[:-1])


def test_similarity_search_and_clustering(spark, emulator):
    from embeddings_similarity import DOCUMENTS, cluster, search

    best = search(spark, emulator.endpoint, "I forgot my password").collect()
    assert "password" in best[0].text.lower()
    assert best[0].similarity >= best[1].similarity >= best[2].similarity
    clusters = cluster(spark, emulator.endpoint).collect()
    assert len(clusters) == len(DOCUMENTS) and {r.cluster for r in clusters} <= {0, 1}
    topics = {frozenset(r.doc_id for r in clusters if r.cluster == c) for c in (0, 1)}
    assert topics == {frozenset({0, 1, 4}), frozenset({2, 3, 5})}  # accounts and passwords apart from revenue


def test_streaming_restarts_from_its_checkpoint(spark, emulator, tmp_path):
    from streaming import TICKET_FILES, answer_tickets

    result = answer_tickets(spark, emulator.endpoint, tmp_path)
    sizes = [len(tickets) for tickets in TICKET_FILES]
    first_run, second_run = result["runs"]
    # files written within the same millisecond may be taken in either order: compare the sorted sizes
    assert [b for b, _ in first_run] == [0, 1] and sorted(n for _, n in first_run) == sorted(sizes[:2])
    assert second_run == [(2, sizes[2])]
    assert result["rows"] == result["tickets"] == sum(sizes) and result["errors"] == 0
    first = result["sample"][0]
    assert first.answer == "Emulated answer to: How do I reset my password?" and first.dims == 1536
    assert emulator.stats()["inputs"]["How do I reset my password?"] == 1


# What a reader of examples/ai_functions.py should see for each ticket: its category, sentiment, order and date.
TRIAGE = {
    1: ("bug", "negative", None, None),
    2: ("feature", "neutral", None, None),
    3: ("question", "neutral", None, None),
    4: ("billing", "negative", 4411, "2024-03-03"),
}


def test_ai_functions_triage(spark, emulator):
    from ai_functions import TICKETS, triage

    from spark_aoai._planning.tasks import SENTIMENTS
    from spark_aoai.emulator import chat_reply
    from tests.test_ai import label_for

    out = triage(spark, emulator.endpoint)
    types = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    assert types["category"] == "string" and types["sentiment"] == "string" and types["title_match"] == "double"
    assert types["fields"] == "struct<product_area:string,order_id:int,charged_on:date>"
    assert types["summary"] == "string"
    rows = out.orderBy("ticket_id").collect()
    assert len(rows) == len(TICKETS)
    for row, (ticket_id, text, _) in zip(rows, TICKETS, strict=True):
        category, sentiment, order_id, charged_on = TRIAGE[ticket_id]
        assert (row.category, row.sentiment) == (category, sentiment)
        assert row.category == label_for(["bug", "feature", "question", "billing"], text)
        assert row.sentiment == label_for(list(SENTIMENTS), text)
        assert row.fields.order_id == order_id
        assert (row.fields.charged_on and row.fields.charged_on.isoformat()) == charged_on
        assert row.fields.product_area == chat_reply([{"role": "user", "content": text}])
        assert row.summary == chat_reply([{"role": "user", "content": text}])
        assert 0 < row.title_match < 1
        assert all(row[c] is None for c in out.columns if c.endswith("_error"))
    stats = emulator.stats()
    assert set(stats["requests"]) == {"chat 200", "embeddings 200"}
    asked = [stats["answered_inputs"][text] for _, text, _ in TICKETS]
    assert len(set(asked)) == 1  # every ticket asked as often as the others: no answer refused and asked again


def test_ai_functions_prints_plausible_answers():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_OPENAI")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ai_functions.py")], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = {int(line[1:].split()[0]): line for line in done.stdout.splitlines() if line.startswith("#")}
    assert sorted(printed) == sorted(TRIAGE)
    for ticket_id, (category, sentiment, order_id, charged_on) in TRIAGE.items():
        assert printed[ticket_id].startswith(f"#{ticket_id} {category} | {sentiment} | "), printed[ticket_id]
        assert f"order={order_id} charged_on={charged_on} |" in printed[ticket_id]


def test_describe_images_runs_against_the_emulator():
    from describe_images import COLOURS, QUESTION, solid_png

    from spark_aoai.emulator._media import short_hash

    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_OPENAI")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "describe_images.py")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for name, rgb in COLOURS.items():
        answer = f"Emulated answer to: {QUESTION} [image/png {short_hash(solid_png(rgb))}]"
        assert f"{name}.png ({len(solid_png(rgb))} bytes): {answer}" in done.stdout


def test_batch_mode_submits_once_and_joins_the_answers(spark, emulator, tmp_path):
    from batch_mode import DEPLOYMENT, TICKETS, summarize_tickets

    emulator.configure(extra_deployments={DEPLOYMENT: "gpt-4o"})
    answers, status = summarize_tickets(spark, emulator.endpoint, str(tmp_path))
    rows = answers.collect()
    assert [r.ticket_id for r in rows] == list(range(len(TICKETS)))
    assert all(r.summary and r.usage.total_tokens > 0 for r in rows[:-1]) and rows[-1].error.code == "invalid_input"
    assert status["done"] and status["completed"] == status["total"] == 3
    created = emulator.stats()["batches"]["created"]
    again, _ = summarize_tickets(spark, emulator.endpoint, str(tmp_path))  # the same job: nothing submitted
    assert again.collect() == rows
    assert emulator.stats()["batches"]["created"] == created and emulator.stats()["requests"] == {}


def test_semantic_operators(spark, emulator):
    from semantic_operators import run

    out = run(spark, emulator.endpoint)
    assert [r.ticket_id for r in out["refunds"]] == [1, 3, 7]
    assert [(r.ticket_id, r.product_id) for r in out["joined"]] == [
        (1, 10), (2, 20), (3, 10), (4, 30), (5, 20), (6, 30), (7, 10), (8, 30)
    ]  # fmt: skip
    assert out["join_statistics"]["plan"] == "classification" and out["join_statistics"]["chat_requests"] == 8
    themes = {r.name: r.answer for r in out["themes"]}
    assert themes["Volt charger"].startswith("charger, volt") and all(r.depth == 1 for r in out["themes"])
    assert sorted(r.ticket_id for r in out["urgent"]) == [4, 8] and out["top_k_statistics"]["requests"] == 1

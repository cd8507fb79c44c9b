"""Prompt packing (issue #17), side by side in one run: spark_aoai rowsPerRequest=1 and "auto", openaivec (its
default packing) and the seed's loop.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/packing.py [--skip seed openaivec] [--scenario tokens latency faults]

1. tokens: a token-limited shared deployment: 300,000 tokens/min and 1,800 requests/min, 250 ms +-50%; a
   1,500-character instruction and 1,200 rows of ~60-character prompts in 4 partitions.
2. latency: 500 ms, no limit, 600 rows in 2 partitions (the chat_throughput latency scenario), same instruction.
3. faults: scenario 1 with the emulator dropping or corrupting 5% of packed items ("auto" only).

Goals: "auto" >= 8x the rows/s of rowsPerRequest=1 on 1 with 0 error rows and <= 1/3 of its billed tokens per
row; >= 1.5x openaivec's rows/s on 1 and 2; 0 error rows on 3.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from _harness import measure, point_openaivec_at, print_table, spark_session
from chat_throughput import DEPLOYMENT, seed_udf, warm_up

from spark_aoai import ChatCompletion
from spark_aoai.emulator import Emulator, Faults, RateLimit

RULES = (
    "Classify the support ticket into exactly one of the categories below and answer with the category name "
    "only. Categories: billing, refunds, delivery delays, damaged goods, missing items, account access, password "
    "reset, product question, feature request, bug report, complaint about staff, praise, cancellation, "
    "subscription change, warranty claim, returns, invoice copy, tax question, shipping address change, other. "
)
INSTRUCTION = (RULES * 5)[:1500]


@dataclass
class Scenario:
    name: str
    rows: int
    partitions: int
    rate_limit: RateLimit
    faults: Faults
    approaches: tuple[str, ...]


SCENARIOS = {
    "tokens": Scenario("token-limited: 300k TPM / 1,800 RPM, 250 ms +-50%", 1200, 4, RateLimit(1800, 300_000, 1.0),
                       Faults(latency_ms=250, jitter=0.5, seed=1), ("rows=1", "auto", "openaivec", "seed")),
    "latency": Scenario("latency-bound: 500 ms, no limit", 600, 2, RateLimit(), Faults(latency_ms=500),
                        ("auto", "openaivec")),
    "faults": Scenario("token-limited, 5% of packed items dropped or corrupted", 1200, 4,
                       RateLimit(1800, 300_000, 1.0),
                       Faults(latency_ms=250, jitter=0.5, seed=1, pack_drop_rate=0.025, pack_corrupt_rate=0.025),
                       ("auto",)),
}  # fmt: skip


def prompt(i: int) -> str:
    return f"Ticket {i}: my parcel from order {1000 + i} arrived late and the box was damaged."[:60]


def build(name: str, emu: Emulator, df: Any) -> Any:
    if name.startswith("rows=") or name == "auto":
        rows = "auto" if name == "auto" else int(name.removeprefix("rows="))
        stage = ChatCompletion(deploymentName=DEPLOYMENT, promptCol="prompt", endpoint=emu.endpoint, apiKey="bench",
                               systemPrompt=INSTRUCTION, rowsPerRequest=rows)  # fmt: skip
        return stage.transform(df)
    if name == "seed":
        return df.withColumn("response", seed_udf(emu.endpoint)("prompt"))
    from openaivec.spark_ext import responses_udf

    return df.withColumn("response", responses_udf(instructions=INSTRUCTION, model_name=DEPLOYMENT)("prompt"))


LABELS = {"rows=1": "spark_aoai rowsPerRequest=1", "auto": 'spark_aoai rowsPerRequest="auto"',
          "openaivec": "openaivec responses_udf", "seed": "seed: requests.post per row"}  # fmt: skip
HEADERS = ["approach", "job s", "rows/s", "error rows", "requests", "429 share", "tokens billed", "tokens/row",
           "token limit used"]  # fmt: skip


def run(spark: Any, emu: Emulator, scenario: Scenario, names: list[str]) -> list[list[str]]:
    df = spark.createDataFrame([(i, prompt(i)) for i in range(scenario.rows)], "id long, prompt string")
    df = df.repartition(scenario.partitions).cache()
    df.count()
    table = []
    for name in names:
        emu.configure(rate_limit=scenario.rate_limit, faults=scenario.faults)
        emu.reset_stats()
        holder: dict[str, Any] = {}
        out = build(name, emu, df)

        def action(out: Any = out, holder: dict[str, Any] = holder) -> None:
            try:
                holder["rows"] = out.select("id", "response").cache()
                holder["rows"].count()
            except Exception as exc:  # a peer that fails the whole job still gets a line
                holder["failure"] = type(exc).__name__

        m = measure(name, scenario.rows, action)
        stats = emu.stats(inputs=False)
        by_status: dict[str, int] = {}
        for key, count in stats["requests"].items():
            by_status[key.split()[-1]] = by_status.get(key.split()[-1], 0) + count
        total = sum(by_status.values())
        errors = f"job failed ({holder['failure']})" if "failure" in holder else str(
            holder["rows"].where("response is null").count())  # fmt: skip
        billed = stats.get("billed_tokens", stats["admitted_tokens"])
        used = "-"
        if scenario.rate_limit.tokens_per_minute and stats["first_request_at"] and stats["last_answer_at"]:
            rate = scenario.rate_limit.tokens_per_minute / 60.0  # admitted at most: the burst, then the rate
            span = stats["last_answer_at"] - stats["first_request_at"]
            used = f"{stats['admitted_tokens'] / (rate * scenario.rate_limit.window_seconds + rate * span):.2f}"
        table.append([LABELS[name], f"{m.seconds:.1f}", f"{scenario.rows / m.seconds:.1f}", errors, str(total),
                      f"{100 * by_status.get('429', 0) / total:.1f}%" if total else "-", str(billed),
                      f"{billed / scenario.rows:.0f}", used])  # fmt: skip
    df.unpersist()
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["seed", "openaivec"])
    args = parser.parse_args()
    tables: dict[str, list[list[str]]] = {key: [] for key in args.scenario}
    with Emulator(process=True) as emu:
        point_openaivec_at(emu.endpoint)
        # openaivec needs Python worker reuse off (see chat_throughput.py); the others run with Spark's default
        for reuse, family in ((True, ("rows=1", "auto", "seed")), (False, ("openaivec",))):
            spark = spark_session(cores=4, reuse_workers=reuse)
            warm_up(spark)
            for key in args.scenario:
                names = [n for n in SCENARIOS[key].approaches if n in family and n not in args.skip]
                if names:
                    tables[key] += run(spark, emu, SCENARIOS[key], names)
            spark.stop()
    for key in args.scenario:
        s = SCENARIOS[key]
        print_table(f"\n{s.name}; {s.rows} rows in {s.partitions} partitions", HEADERS, tables[key])


if __name__ == "__main__":
    main()

"""Model cascades (issue #29), side by side: every row on the final model, the cascade, the cheap model alone;
then the cascade's guarantee over many emulator seeds.

    .venv/bin/python benchmarks/cascade.py [--rows 20000] [--seeds 20] [--correlation 0.9] [--rows-per-request 10]
                                           [--wrong 0.2] [--no-logprobs]

A classification of ``--rows`` tickets into four labels; the emulator's cheap model (gpt-4.1-nano) answers wrong
on ``--wrong`` of the rows (20%, chosen by the seed), unsure of ``--correlation`` of those; gpt-4.1's answer is
the ground truth. The cascade runs with cascadeTarget=0.95, cascadeConfidence=0.95 and the default sample (500 rows).
Agreement is measured against the emulator's ground truth, cost from the price table and the billed tokens
(``statistics()``), rows/s from the wall clock of the whole job (the cascade's calibration pass included).

Goals: agreement >= 0.95 over all rows in at least 19 of 20 seeds; at least half the rows answered cheap; the
cascade's cost well below the final model's; with --correlation 0, (nearly) every row on the final model.
With ``--no-logprobs`` the cheap model sends no logprobs and the cascade scores by agreement of two answers (a
weaker signal: try ``--wrong 0.05 --correlation 1``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _harness import print_table, spark_session

from spark_aoai import ai
from spark_aoai.emulator import Emulator, Faults
from spark_aoai.emulator._labels import pick_label

LABELS = ["bug", "feature", "question", "billing"]
WORDS = ["crashes", "please add an option", "how do I", "refund, I was charged twice", "export", "login fails"]
CHEAP, FINAL = "gpt-4.1-nano", "gpt-4.1"


def tickets(spark: Any, rows: int) -> Any:
    data = [(i, f"ticket {i}: {WORDS[i % 6]} and {WORDS[(i * 7 + 3) % 6]} on page {i % 89}") for i in range(rows)]
    return spark.createDataFrame(data, "id int, text string").repartition(4).cache()


def run(stage: Any, df: Any, rows: int) -> dict[str, Any]:
    started = time.perf_counter()
    out = stage.transform(df).select("text", "label", *(["cascade"] if stage.isDefined("cascadeCol") else []))
    collected = out.collect()
    seconds = time.perf_counter() - started
    stats = stage.statistics()
    agreement = sum(r["label"] == pick_label(LABELS, r["text"]) for r in collected) / rows
    cheap = sum(r["cascade"]["deployment"] == CHEAP for r in collected) if "cascade" in out.columns else None
    return {"agreement": agreement, "cost": stats.estimated_cost, "seconds": seconds, "cheap": cheap, "stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--correlation", type=float, default=0.9)
    parser.add_argument("--rows-per-request", type=int, default=10, help="packing, the same for every approach")
    parser.add_argument("--wrong", type=float, default=0.2, help="share of rows the cheap model answers wrong")
    parser.add_argument("--no-logprobs", action="store_true", help="the cheap model sends no logprobs")
    args = parser.parse_args()
    spark = spark_session(cores=2, reuse_workers=True)
    df = tickets(spark, args.rows)
    df.count()
    with Emulator(process=True) as emulator:
        conn = {
            "endpoint": emulator.endpoint,
            "apiKey": "k",
            "concurrency": 32,
            "rowsPerRequest": args.rows_per_request,
        }

        def faults(seed: int) -> Faults:
            return Faults(cheap_wrong_rate=args.wrong, cheap_confidence_correlation=args.correlation, seed=seed,
                          cheap_logprobs=not args.no_logprobs)  # fmt: skip

        def cascade() -> Any:
            return ai.classify("text", labels=LABELS, cascadeDeployments=[CHEAP, FINAL], cascadeCol="cascade", **conn)

        emulator.configure(faults=faults(0))
        side = {
            f"final only ({FINAL})": run(
                ai.classify("text", labels=LABELS, deploymentName=FINAL, **conn), df, args.rows
            ),
            "cascade": run(cascade(), df, args.rows),
            f"cheap only ({CHEAP})": run(
                ai.classify("text", labels=LABELS, deploymentName=CHEAP, **conn), df, args.rows
            ),
        }
        table = [
            [name, f"{m['agreement']:.4f}", f"${m['cost']:.4f}", f"{args.rows / m['seconds']:,.0f}",
             "-" if m["cheap"] is None else f"{m['cheap'] / args.rows:.1%}"]
            for name, m in side.items()
        ]  # fmt: skip
        scored = "agreement" if args.no_logprobs else "logprobs"
        title = f"{args.rows:,} rows, cheap wrong on {args.wrong:.0%}, correlation {args.correlation}, {scored}"
        print_table(f"{title}, seed 0",
                    ["approach", "agreement", "cost", "rows/s", "rows cheap"], table)  # fmt: skip
        print(side["cascade"]["stats"])
        outcomes = [(side["cascade"]["agreement"], side["cascade"]["cheap"] / args.rows)]
        for seed in range(1, args.seeds):
            emulator.configure(faults=faults(seed))
            measured = run(cascade(), df, args.rows)
            outcomes.append((measured["agreement"], measured["cheap"] / args.rows))
            print(f"seed {seed}: agreement {measured['agreement']:.4f}, cheap {outcomes[-1][1]:.1%}", flush=True)
        met = sum(agreement >= 0.95 for agreement, _ in outcomes)
        print(f"target 0.95 met in {met} of {len(outcomes)} seeds; rows cheap {min(c for _, c in outcomes):.1%} "
              f"to {max(c for _, c in outcomes):.1%}")  # fmt: skip


if __name__ == "__main__":
    main()

"""What the trust fixes buy, in figures: the spend cap spent (not held back by worst-case reservations), and how
fast a job fails whose token provider never works.

    ../.venv/bin/python trust.py

1. 200 rows, `maxTokens=1000` (a worst case ~60x the real answer): capped at 3x the job's need (no row should
   be refused), then at a third of it (the cap should be spent before rows are refused).
2. The same 200 rows with a `tokenProvider` that always raises: seconds until the job fails.
"""

from __future__ import annotations

import os
import sys
import time

os.environ["PYSPARK_PYTHON"] = sys.executable

from pyspark.sql import SparkSession

from spark_aoai import ChatCompletion, failure_of
from spark_aoai.emulator import Emulator


def unavailable() -> str:
    raise RuntimeError("identity endpoint unavailable")


def main() -> None:
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    rows = [(i, f"question {i} about the weather in town {i}") for i in range(200)]
    df = spark.createDataFrame(rows, "id int, prompt string").repartition(2)
    with Emulator() as emu:
        base = {"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": emu.endpoint, "usageCol": "usage"}
        need = sum(r.usage.total_tokens for r in ChatCompletion(apiKey="k" * 20, **base).transform(df).collect())
        for label, cap in (("3x the need", 3 * need), ("a third of the need", need // 3)):
            emu.reset_stats()
            stage = ChatCompletion(apiKey="k" * 20, maxTokens=1000, maxTotalTokens=cap, **base)
            out = stage.transform(df).collect()
            refused = sum(1 for r in out if r.error is not None and r.error.code == "budget_exhausted")
            billed = emu.stats()["billed_tokens"]
            print(f"spend cap at {label}: cap {cap:,}, billed {billed:,} ({billed / cap:.2f} of the cap), "
                  f"{refused} of {len(rows)} rows refused")  # fmt: skip
        started = time.monotonic()
        try:
            ChatCompletion(tokenProvider=unavailable, **base).transform(df).collect()
        except Exception as exc:  # the job fails: that is the figure
            error = failure_of(exc) or {}
            print(f"a token provider that always raises: the job failed after {time.monotonic() - started:.1f} s "
                  f"({error.get('code')}: {str(error.get('message'))[:70]})")  # fmt: skip
    spark.stop()


if __name__ == "__main__":
    main()

"""The notebook's live progress bar (issue #27 point 9): tqdm.notebook's ipywidgets bar, read from its widget
state without a browser; the text line stays outside a notebook kernel. Real emulator, local Spark."""

from __future__ import annotations

import sys
import time

import pytest

from spark_aoai import ChatCompletion
from spark_aoai._core.pricing import PRICE_TABLE
from spark_aoai._features.progress_widgets import NotebookBar, notebook_kernel, widgets_available

RECORD = {
    "rows_done": 40, "error_rows": 3, "error_codes": {"invalid_input": 1, "429": 2}, "requests": 44,
    "statuses": {"200": 42, "429": 2}, "started": 0.0, "updated": 1.0,
    "tokens": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200, "cached_tokens": 0},
}  # fmt: skip


def test_the_bar_shows_rows_tokens_cost_and_errors_by_code():
    assert widgets_available()  # the notebook extra is in dev
    bar = NotebookBar("gpt-4o", 100, "rows", PRICE_TABLE["gpt-4o"])
    bar.show([RECORD], final=False)
    state = bar.state()
    assert (state["value"], state["max"], state["description"]) == (40, 100, "spark_aoai gpt-4o:  40%")
    cost = PRICE_TABLE["gpt-4o"].cost(1000, 200)
    assert f"1,200 tokens, ${cost:,.4f}, errors: 429 2, invalid_input 1" in state["text"]
    assert "40/100" in state["text"] and "rows/s" in state["text"]  # tqdm's count and rate (ETA when known)
    bar.show([RECORD], final=True)  # the action ended at 40 of 100 rows (a show()): not painted as a failure
    assert bar.state()["bar_style"] == "info"
    whole = NotebookBar("gpt-4o", 40, "rows", None)
    whole.show([RECORD], final=True)
    assert whole.state()["bar_style"] == "success" and "$" not in whole.state()["text"]


@pytest.fixture
def notebook():
    """A real IPython shell standing in for a notebook kernel's (its ``kernel`` set), removed afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    prompts = {name: getattr(sys, name) for name in ("ps1", "ps2", "ps3") if hasattr(sys, name)}
    shell = InteractiveShell.instance()  # it sets sys.ps1 (what marks a session interactive): restored after
    shell.kernel = object()  # what ipykernel's shell has, and a terminal's has not
    try:
        yield shell
    finally:
        vars(shell).pop("kernel", None)
        InteractiveShell.clear_instance()
        for name in ("ps1", "ps2", "ps3"):
            if name in prompts:
                setattr(sys, name, prompts[name])
            elif hasattr(sys, name):
                delattr(sys, name)


def test_a_notebook_kernel_gets_the_bar_and_a_terminal_the_line(spark, emulator, notebook, capsys):
    assert notebook_kernel()
    df = spark.createDataFrame([(i, f"q {i}" if i % 10 else "") for i in range(40)], "id int, prompt string")
    df = df.repartition(2)
    stage = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emulator.endpoint, apiKey="k",
                           progress=True)  # fmt: skip
    stage.estimate(df)
    stage.transform(df).collect()
    progress = stage._usage_run.progress  # type: ignore[attr-defined]
    progress.thread.join(timeout=10)  # it ends within one interval of the action
    assert progress.bar is not None and not progress.thread.is_alive()
    state = progress.bar.state()
    assert (state["done"], state["value"], state["max"], state["bar_style"]) == (40, 40, 40, "success")
    assert "errors: invalid_input 4" in state["text"] and " tokens, $" in state["text"]
    assert not any(line.startswith("spark_aoai gpt-4o") for line in capsys.readouterr().err.splitlines())
    del notebook.kernel  # an IPython terminal: the text line, as before
    assert not notebook_kernel()
    stage.transform(df).collect()
    time.sleep(2.5)
    assert stage._usage_run.progress.bar is None  # type: ignore[attr-defined]

"""The live progress bar of a notebook (Jupyter, JupyterLab, VS Code, Fabric, Databricks).

Drawn with ``tqdm.notebook``: tqdm is the progress library most Python users already have, maintained for
a decade, and its notebook flavour is an ipywidgets bar (the widget protocol every one of those notebooks
renders) with tqdm's own rate and ETA (smoothed over the updates). Both come with the ``notebook`` extra;
without them, or outside a notebook kernel, ``_progress`` keeps its text line (in place in a notebook, ``\\r``
on a terminal, a new line in a log).

The bar shows the rows done of the total (when ``estimate`` counted the same input), the rate and ETA, and
after it the tokens billed, the estimated cost so far and the error rows by code. The state is plain widget
values (``state()``), so the tests read it without a browser.
"""

from __future__ import annotations

import html
import sys
from collections import Counter
from typing import Any

from spark_aoai._core.pricing import Price


def notebook_kernel() -> bool:
    """Whether the driver runs in a notebook kernel (a shell with a kernel: not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None) if ipython is not None else None
    shell = get() if get is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
        import tqdm.notebook  # noqa: F401
    except ImportError:
        return False
    return True


def figures(records: list[dict[str, Any]], price: Price | None) -> tuple[int, int, float | None, Counter[str]]:
    """Rows done, billed tokens, cost so far and error rows by code, from the task records."""
    done = sum(r["rows_done"] for r in records)
    tokens: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for record in records:
        tokens.update(record["tokens"])
        codes.update(record.get("error_codes", {}))
    cost = None
    if price is not None:
        cost = price.cost(tokens["prompt_tokens"], tokens["completion_tokens"], tokens["cached_tokens"])
    return done, tokens["total_tokens"], cost, codes


def postfix(tokens: int, cost: float | None, codes: Counter[str]) -> str:
    """What follows the bar: ``12,345 tokens, $0.0312, errors: 429 3, invalid_input 2``."""
    parts = [f"{tokens:,} tokens"]
    if cost is not None:
        parts.append(f"${cost:,.4f}")
    errors = ", ".join(f"{code} {count:,}" for code, count in sorted(codes.items()) if count)
    parts.append(f"errors: {errors}" if errors else "no errors")
    return ", ".join(parts)


class NotebookBar:
    """One action's bar, redrawn from the task records by the progress thread."""

    def __init__(self, label: str, total: int | None, noun: str, price: Price | None) -> None:
        from tqdm.notebook import tqdm

        self.price = price
        self.bar = tqdm(total=total, desc=f"spark_aoai {label}", unit=f" {noun}", leave=True, dynamic_ncols=True)

    def show(self, records: list[dict[str, Any]], final: bool) -> None:
        done, tokens, cost, codes = figures(records, self.price)
        self.bar.n = done
        self.bar.set_postfix_str(postfix(tokens, cost, codes), refresh=False)
        self.bar.refresh()
        if final:
            total = self.bar.total
            self.bar.close()
            if total and done < total:  # a partial action (show, take): not a failure, which tqdm would paint
                self.bar.container.children[1].bar_style = "info"

    def state(self) -> dict[str, Any]:
        """The widget's values: what the notebook draws (its texts as read: unescaped, tqdm's figure spaces as
        spaces)."""
        label, progress, after = self.bar.container.children

        def text(value: str) -> str:
            return html.unescape(value).replace("\u2007", " ")

        return {
            "done": self.bar.n,
            "total": self.bar.total,
            "description": text(label.value),
            "value": progress.value,
            "max": progress.max,
            "bar_style": progress.bar_style,
            "text": text(after.value),
        }

"""A cascade's thresholds, chosen on a random sample that every level answered; pure Python, no pyspark.

The guarantee (``cascadeTarget`` = 1 - e, ``cascadeConfidence`` = 1 - a): with probability at least 1 - a,
at most a share e of *all* rows of the table get an answer that differs from the final deployment's. A row a
cheap level keeps (its confidence at or above the level's threshold) may differ; a row routed on to the final
deployment agrees by definition. With L cheap levels, each gets e/L of the share and a/L of the risk (a union
bound), so the guarantee holds for the cascade as a whole.

For one level, let p(t) be the share of all rows that reach it, score at least t and disagree: it can only
fall as t rises. On a uniform sample of n rows, k(t) counts such sample rows; p(t) <= e is accepted when
P(Binomial(n, e) <= k(t)) <= a (an exact one-sided binomial test, the Clopper-Pearson bound; sampling
without replacement only makes it conservative). Thresholds are tested from the most confident score down,
stopping at the first that fails (fixed-sequence testing, as in Learn-then-Test): no correction for the many
thresholds is needed, because p is monotone. Among the thresholds that passed, the level keeps the lowest
one at which the rows it keeps *themselves* agree at ``cascadeTarget`` or better (the same test on the kept
sample rows): a cheap answer is never kept only because other rows' agreement makes room for it. When the
cheap level's confidence tells nothing (its wrong answers score like its right ones), no threshold passes and
every row goes on. Raising a threshold can only lower p, so this choice keeps the guarantee.

What it does not say: that answers are *correct* (only that they agree with the final deployment), nor
anything about one row, nor about rows unlike the sampled table (calibrate on the data you run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def _log_pmf(k: int, n: int, p: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in log space (no underflow for large n).

    >>> round(binomial_cdf(0, 59, 0.05), 4), binomial_cdf(5, 5, 0.3)
    (0.0485, 1.0)
    """
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    terms = [_log_pmf(i, n, p) for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(k: int, n: int, risk: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen ``k`` times in ``n`` (true rate below it with
    probability 1 - ``risk``).

    >>> round(upper_bound(0, 100, 0.05), 4), upper_bound(3, 0, 0.05)
    (0.0295, 1.0)
    """
    if n <= 0 or k >= n:
        return 1.0
    low, high = k / n, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if binomial_cdf(k, n, middle) > risk:
            low = middle
        else:
            high = middle
    return high


def interval(agree: int, n: int, confidence: float) -> tuple[float | None, float | None]:
    """Two-sided Clopper-Pearson interval of an agreement rate (``agree`` of ``n``) at ``confidence``."""
    if n <= 0:
        return None, None
    risk = (1 - confidence) / 2
    return 1 - upper_bound(n - agree, n, risk), upper_bound(agree, n, risk)


def _passes(k: int, n: int, share: float, risk: float) -> bool:
    """Whether ``k`` of ``n`` shows the true rate to be at most ``share`` (one-sided test at ``risk``)."""
    return n > 0 and binomial_cdf(k, n, share) <= risk


@dataclass(frozen=True)
class Level:
    """One cheap level's calibration. ``threshold`` None: no answer of this level is kept."""

    deployment: str
    threshold: float | None
    sample_rows: int  # sample rows that reached this level
    sample_agreement: float | None  # of those this level answered, the share agreeing with the final one
    interval: tuple[float | None, float | None]
    kept: int  # sample rows at or above the threshold
    kept_disagreeing: int
    bound: float  # upper bound on the share of all rows this level keeps and gets different

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(
    deployments: Sequence[str],
    scores: Sequence[Sequence[float | None]],
    disagree: Sequence[Sequence[bool]],
    target: float,
    confidence: float,
) -> list[Level]:
    """The threshold of each cheap level (in order), from the sample's scores and disagreements per level.

    ``scores[level][row]`` is the row's confidence at that level (None: no answer or no logprobs, never kept);
    ``disagree[level][row]`` whether its answer differs from the final deployment's (or the final one failed).
    """
    n = len(scores[0]) if scores else 0
    levels = len(deployments)
    share, risk = (1 - target) / max(1, levels), (1 - confidence) / max(1, levels)
    remaining = list(range(n))
    calibrated = []
    for level, name in enumerate(deployments):
        answered = [r for r in remaining if scores[level][r] is not None]
        agreeing = sum(not disagree[level][r] for r in answered)
        ranked = sorted(answered, key=lambda r: -float(scores[level][r]))  # type: ignore[arg-type]
        threshold, kept, kept_wrong = None, 0, 0
        position, accepted, wrong = 0, 0, 0
        while position < len(ranked):  # each distinct score, from the most confident down
            score = scores[level][ranked[position]]
            while position < len(ranked) and scores[level][ranked[position]] == score:
                wrong += disagree[level][ranked[position]]
                accepted += 1
                position += 1
            if not _passes(wrong, n, share, risk):  # the share of all rows: the guarantee
                break
            if accepted >= 1 / (1 - target) and wrong <= (1 - target) * accepted:  # the kept rows: no silent trade
                threshold, kept, kept_wrong = score, accepted, wrong
        calibrated.append(
            Level(
                name,
                threshold,
                len(remaining),
                agreeing / len(answered) if answered else None,
                interval(agreeing, len(answered), confidence),
                kept,
                kept_wrong,
                upper_bound(kept_wrong, n, risk) if n else 1.0,
            )
        )
        if threshold is not None:
            remaining = [r for r in remaining if scores[level][r] is None or scores[level][r] < threshold]  # type: ignore[operator]
    return calibrated


def agree(first: Any, second: Any) -> bool:
    """Whether two answers agree, field by field: strings up to case and spacing, numbers up to rounding,
    arrays of labels as sets, structs field by field (a field present in one only disagrees).

    >>> agree({"name": "Ada  Lovelace", "age": 36}, {"age": 36.0, "name": "ada lovelace"}), agree("bug", "feature")
    (True, False)
    """
    return not differing_fields(first, second)


def differing_fields(first: Any, second: Any, path: str = "") -> list[str]:
    """The paths (``""`` for the whole value, ``"name"``, ``"address.city"``) where two answers differ."""
    if isinstance(first, dict) and isinstance(second, dict):
        found = []
        for key in dict.fromkeys([*first, *second]):
            where = f"{path}.{key}" if path else str(key)
            if key not in first or key not in second:
                found.append(where)
            else:
                found += differing_fields(first[key], second[key], where)
        return found
    if isinstance(first, (list, tuple)) and isinstance(second, (list, tuple)):
        if all(isinstance(v, str) for v in [*first, *second]):
            return [] if {_text(v) for v in first} == {_text(v) for v in second} else [path]
        if len(first) != len(second):
            return [path]
        return [p for a, b in zip(first, second, strict=True) for p in differing_fields(a, b, path)][:1]
    return [] if _same(first, second) else [path]


def _text(value: str) -> str:
    return " ".join(value.split()).casefold()


def _same(first: Any, second: Any) -> bool:
    if isinstance(first, str) and isinstance(second, str):
        return _text(first) == _text(second)
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    numbers = (int, float)
    if isinstance(first, numbers) and isinstance(second, numbers):
        return math.isclose(first, second, rel_tol=1e-9, abs_tol=1e-12)
    return bool(first == second)


def describe_cascade(report: dict[str, Any]) -> list[str]:
    """The lines ``str(statistics())`` adds for a cascade (``report`` is ``JobStatistics.cascade``)."""

    def money(value: Any) -> str:
        return "n/a" if value is None else f"${value:,.4f}"

    lines = [f"cascade (target {report['target']:.3g}, confidence {report['confidence']:.3g}):"]
    for level in report["levels"]:
        threshold = level.get("threshold")
        shown = "final" if level.get("final") else "keeps none" if threshold is None else f"threshold {threshold:.4g}"
        lines.append(
            f"  {level['deployment']}: rows {level.get('rows', 'n/a')}, {shown}, cost {money(level.get('cost'))}"
        )
    sample = report["sample"]
    low, high = sample.get("interval") or (None, None)
    agreement = sample.get("agreement")
    if agreement is not None and low is not None and high is not None:
        lines.append(
            f"  sample {sample['rows']} rows: cheap agrees {agreement:.3f} ({low:.3f}..{high:.3f}); "
            f"kept rows bound: at most {sample['disagreement_bound']:.3f} of all rows differ"
        )
    lines.append(
        f"  cost {money(report.get('cost'))} vs final deployment alone {money(report.get('final_only_cost'))}"
        + ("" if report.get("saving") is None else f" (saving {report['saving']:.1%})")
    )
    return lines

"""A job over time: what each task sent per time bucket, kept small enough to rewrite every second.

Each task's ``StatsHooks`` adds every attempt to its ``Timeline`` (requests, 429s, billed tokens per bucket of
``width`` seconds, by wall-clock time); when a timeline holds more than ``C.TIMELINE_MAX_BUCKETS`` buckets its width
doubles and the buckets merge, so an hour-long task writes at most a few hundred. The driver merges the tasks'
timelines at the widest width (``merge``) for the report's chart (``_report``). Pure: no pyspark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spark_aoai._core import constants as C

# per bucket: requests, 429s, prompt tokens, completion tokens, cached prompt tokens
FIGURES = ("requests", "throttled", "prompt_tokens", "completion_tokens", "cached_tokens")


@dataclass
class Timeline:
    """Buckets of ``width`` seconds keyed by their start (a multiple of ``width``, in epoch seconds)."""

    width: int = 1
    buckets: dict[int, list[int]] = field(default_factory=dict)

    def add(self, when: float, throttled: bool, prompt: int = 0, completion: int = 0, cached: int = 0) -> None:
        start = int(when) // self.width * self.width
        bucket = self.buckets.setdefault(start, [0] * len(FIGURES))
        for index, value in enumerate((1, int(throttled), prompt, completion, cached)):
            bucket[index] += value
        if len(self.buckets) > C.TIMELINE_MAX_BUCKETS:
            self.widen(self.width * 2)

    def widen(self, width: int) -> None:
        """Merge the buckets into buckets of ``width`` seconds (a multiple of the current width)."""
        merged: dict[int, list[int]] = {}
        for start, figures in self.buckets.items():
            bucket = merged.setdefault(start // width * width, [0] * len(FIGURES))
            for index, value in enumerate(figures):
                bucket[index] += value
        self.width, self.buckets = width, merged

    def as_record(self) -> dict[str, Any]:
        return {"width": self.width, "buckets": {str(k): v for k, v in self.buckets.items()}}

    @classmethod
    def from_record(cls, record: Any) -> Timeline:
        """A task record's timeline (an empty one for a record without, or with one that is not readable)."""
        try:
            width = max(1, int(record["width"]))
            buckets = {int(k): [int(x) for x in v][: len(FIGURES)] for k, v in dict(record["buckets"]).items()}
        except (KeyError, TypeError, ValueError):
            return cls()
        return cls(width, {k: v + [0] * (len(FIGURES) - len(v)) for k, v in buckets.items()})


def merge(records: list[dict[str, Any]]) -> Timeline:
    """The job's timeline: every task record's, at the widest width among them (a power of two)."""
    timelines = [Timeline.from_record(r.get("timeline")) for r in records]
    width = max((t.width for t in timelines), default=1)
    total = Timeline(width)
    for timeline in timelines:
        if timeline.width != width:
            timeline.widen(width)
        for start, figures in timeline.buckets.items():
            bucket = total.buckets.setdefault(start, [0] * len(FIGURES))
            for index, value in enumerate(figures):
                bucket[index] += value
    while len(total.buckets) > C.TIMELINE_MAX_BUCKETS:
        total.widen(total.width * 2)
    return total

"""Identical requests within a task sent once (``dedup``, on by default): the answer is fanned out.

A unit whose payload equals one already in flight becomes that unit's *follower* and is not sent; once the
leader is resolved its rows' outcome is copied onto the follower's (usage 0: only the leader's rows carry
what the request cost). A successful one-row answer is also remembered (the last ``DEDUP_MEMO_ENTRIES``), so
a repeat in a later batch of the task is answered at once; batched requests are not (embeddings keep their
own vector cache, bounded in bytes), so memory stays flat however long the partition. Runs on the
partition's own thread: the senders never see followers.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from spark_aoai._core import constants as C
from spark_aoai._core.contract import RowError, Unit, Usage


def payload_key(payload: dict[str, Any]) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Answer:
    """What one input item of a resolved unit got, as a duplicate receives it."""

    value: Any
    error: RowError | None
    usage: Usage | None
    finish_reason: str | None
    source: str | None
    confidence: float | None = None


def _answers(unit: Unit) -> list[Answer]:
    results = unit.results
    answers = []
    for group in unit.groups:
        row = group[0]
        usage = results.usage[row]
        answers.append(
            Answer(results.values[row], results.errors[row], None if usage is None else usage.nothing(),
                   results.finish_reasons[row], results.sources[row], results.confidence[row])
        )  # fmt: skip
    return answers


def _give(unit: Unit, answers: list[Answer]) -> None:
    for group, answer in zip(unit.groups, answers, strict=True):
        if answer.confidence is not None:
            unit.results.set_confidence(group, answer.confidence)
        if answer.error is not None:
            unit.results.fail(group, answer.error, answer.usage)
            continue
        unit.results.succeed(group, answer.value, answer.usage, answer.finish_reason)
        if answer.source is not None:
            unit.results.mark_source(group, answer.source)


class InFlight:
    """One task's units in flight by payload, their followers, and the answers of recent ones."""

    def __init__(self, memo_entries: int = C.DEDUP_MEMO_ENTRIES) -> None:
        self.leaders: dict[str, Unit] = {}
        self.followers: list[tuple[Unit, Unit]] = []
        self.memo: OrderedDict[str, list[Answer]] = OrderedDict()
        self.memo_entries = memo_entries
        self.duplicates = 0  # units answered without a request of their own

    def follow(self, unit: Unit) -> bool:
        """True when ``unit`` needs no request: answered from a recent answer, or waiting for its twin."""
        key = payload_key(unit.payload)
        remembered = self.memo.get(key)
        leader = self.leaders.get(key)
        if remembered is not None and len(remembered) == len(unit.groups):
            self.memo.move_to_end(key)
            _give(unit, remembered)
        elif leader is not None and len(leader.groups) == len(unit.groups):
            self.followers.append((leader, unit))
        else:
            self.leaders[key] = unit
            return False
        self.duplicates += 1
        return True

    def settle(self) -> None:
        """Give each follower whose leader is resolved its answer; remember the leaders' answers."""
        if self.followers:
            waiting = []
            for leader, follower in self.followers:
                if leader.results.unresolved(leader.rows):
                    waiting.append((leader, follower))
                else:
                    _give(follower, _answers(leader))
            self.followers = waiting
        for key, leader in list(self.leaders.items()):
            if not leader.results.unresolved(leader.rows):
                del self.leaders[key]
                if len(leader.groups) != 1:  # a batch (embeddings: its own vector cache) would hold megabytes
                    continue
                answers = _answers(leader)
                if all(answer.error is None for answer in answers):  # errors are not remembered
                    self.memo[key] = answers
                    if len(self.memo) > self.memo_entries:
                        self.memo.popitem(last=False)

"""The partition runner: a stream of batches in, each batch's results out, in input order.

For each batch the operation plans *units* (one request payload over a set of row indices); a unit whose
answer the response cache already holds is answered at once (usage 0), with ``dedup`` one identical to a unit
in flight waits for its answer (``_dedup``), the others go to the ``Sender``. A batch is
yielded once every row in it holds exactly one value or one error, while the next batch is already being
worked on; at most ``MAX_PENDING_BATCHES`` batches are held, so memory stays flat.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from spark_aoai._client.config import ClientConfig
from spark_aoai._client.http import clean_message
from spark_aoai._core.constants import MAX_PENDING_BATCHES
from spark_aoai._core.contract import CACHED, ErrorCode, Operation, RowError, RowResults, TaskOperation, Unit
from spark_aoai._engine.dedup import InFlight
from spark_aoai._engine.hooks import Hooks, NoHooks
from spark_aoai._engine.sender import Sender
from spark_aoai._planning.operations import Asked
from spark_aoai._planning.packing import Pack, Single
from spark_aoai.exceptions import RequestFailedError, SystemicError

T = TypeVar("T")
_POLL_SECONDS = 0.1


def run_partition(
    batches: Iterator[tuple[Sequence[Any], T]],
    operation: Operation,
    config: ClientConfig,
    hooks: Hooks | None = None,
    dedup: bool = False,
) -> Iterator[tuple[RowResults, T]]:
    """Send every batch's units and yield ``(results, context)`` per batch, in input order.

    With ``dedup``, a unit identical to one in flight (or recently answered) is answered with it, unsent.
    """
    hooks = hooks or NoHooks()
    inflight = InFlight() if dedup else None
    settle = inflight.settle if inflight is not None else _nothing
    task = operation.for_task()
    deadline = None
    if config.limits.deadline_seconds is not None:
        deadline = time.monotonic() + config.limits.deadline_seconds
    sender = Sender(config, task, operation.route, deadline, hooks)
    pending: deque[tuple[RowResults, T]] = deque()
    rows_done = 0
    try:
        for items, context in batches:
            results = RowResults(len(items))
            units = task.plan(items, results)
            hooks.planned(results)  # the statistics count a batch's rows, those refused at planning included
            for unit in units:
                if _answer_from_cache(unit, task, hooks, sender):
                    continue
                if inflight is not None and inflight.follow(unit):
                    continue
                sender.submit(unit)
            pending.append((results, context))
            settle()
            while pending and (pending[0][0].done.is_set() or len(pending) >= MAX_PENDING_BATCHES):
                entry = _finished(pending.popleft(), sender, config, rows_done, settle)
                rows_done += len(entry[0])
                yield entry
        while pending:
            entry = _finished(pending.popleft(), sender, config, rows_done, settle)
            rows_done += len(entry[0])
            yield entry
    finally:
        sender.close()
        hooks.close()


def _answer_from_cache(unit: Unit, task: TaskOperation, hooks: Hooks, sender: Sender) -> bool:
    """Answer ``unit`` from the store when it holds an answer this version can read; False to send it."""
    try:
        body = hooks.lookup(unit)
        if body is None:
            return False
        follow_ups = task.accept(unit, body, None)
    except Exception as exc:  # a stored answer this version cannot read (or a hostile one): ask again
        if len(unit.results.unresolved(unit.rows)) == len(unit.rows):
            return False
        error = RowError(200, ErrorCode.MALFORMED_RESPONSE, f"a stored answer cannot be read: {type(exc).__name__}")
        unit.results.fail(unit.results.unresolved(unit.rows), error)
        return True
    asked_again = {row for part in follow_ups or () for row in part.rows}
    answered = [row for row in unit.rows if row not in asked_again]
    unit.results.charge_nothing(answered)  # a stored answer costs nothing this time
    unit.results.mark_source(answered, CACHED)  # a row re-asked gets the source of the answer it keeps
    for part in follow_ups or ():
        part.context = _unbilled(part.context)
        # a pack's items asked again may have been answered and stored by an earlier run (a re-ask, stored
        # under the row's own request, would find the answer it corrects: it is sent)
        if part.stored_as is not None or not _answer_from_cache(part, task, hooks, sender):
            sender.submit(part)
    return True


def _unbilled(context: Any) -> Any:
    """A re-ask of a stored answer carries no cost for it: that answer was paid for in an earlier run."""
    if isinstance(context, Asked):
        return replace(context, usage=None)
    if isinstance(context, Single):
        return replace(context, carried=None, asked=_unbilled(context.asked))
    if isinstance(context, Pack):
        return replace(context, carried=(None,) * len(context.carried))
    return context


def _nothing() -> None:
    pass


def _finished(
    entry: tuple[RowResults, T], sender: Sender, config: ClientConfig, rows_before: int, settle: Callable[[], None]
) -> tuple[RowResults, T]:
    results, _ = entry
    settle()
    while not results.done.wait(_POLL_SECONDS):
        settle()
        if sender.systemic is not None:
            raise SystemicError(sender.systemic, config.describe())
    if sender.systemic is not None:
        raise SystemicError(sender.systemic, config.describe())
    results.mask_errors(functools.partial(clean_message, config))  # whatever wrote a message, no secret in it
    if config.fail_on_error:
        first = results.first_error()
        if first is not None:
            failed = sum(error is not None for error in results.errors)
            raise RequestFailedError(first, failed_rows=failed, rows_before=rows_before)
    return entry

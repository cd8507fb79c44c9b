"""On the driver: a failed action whose cause is a systemic error shows what to change first.

Spark hands a task's exception to the driver wrapped: ``PythonException`` starts with "An exception was
thrown from the Python worker" and the worker's traceback, so the ``SystemicError`` line is about eight lines
in, after the executor's Java stack on stderr. ``install()`` (called by every transform; it acts once per
process) adds a display handler for uncaught exceptions that carry a ``SystemicError``: it writes
``spark_aoai: <what failed, where, what to change>`` first, then the usual traceback. In IPython (Jupyter,
Fabric, Databricks) through ``set_custom_exc`` (unless the session has its own custom handler), elsewhere
through ``sys.excepthook``, chained to the hook there was. Every other exception is shown as before.

The library's own actions (``stage.check()``, ``retry_failed``) raise the clean ``SystemicError`` itself
(``raised_clean``); for your own ``try``, ``spark_aoai.systemic_of(exc)`` finds it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from spark_aoai.exceptions import SystemicError, systemic_of

PREFIX = "spark_aoai: "
_installed = threading.Lock()
_done: list[str] = []


def first_line(exc: BaseException) -> str | None:
    """The line to show first for ``exc``: the fix of the systemic error it carries (None: nothing to add)."""
    if isinstance(exc, SystemicError):
        return None  # its own message is the first line Python prints for it
    found = systemic_of(exc)
    return None if found is None else PREFIX + str(found).split(" [spark_aoai error ", 1)[0]


def excepthook(previous: Callable[..., Any]) -> Callable[..., Any]:
    """A ``sys.excepthook`` that writes ``first_line`` to stderr, then hands over to ``previous``."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        line = first_line(value)
        if line is not None:
            sys.stderr.write(line + "\n\n")
        previous(kind, value, tb)

    hook.spark_aoai = True  # type: ignore[attr-defined]
    return hook


def ipython_handler(shell: Any, kind: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None) -> Any:
    """IPython's custom handler: the usual structured traceback, with ``first_line`` on top when there is one.

    It shows the traceback itself (``_showtraceback``, which a kernel sends to the notebook as its error):
    IPython's cell runner ignores what a custom handler returns."""
    lines = shell.InteractiveTB.structured_traceback(kind, value, tb, tb_offset=tb_offset)
    line = first_line(value)
    shell._showtraceback(kind, value, lines if line is None else [line, "", *lines])
    return []


def install() -> None:
    """Add the handler once per process (IPython's when a shell runs, else ``sys.excepthook``)."""
    with _installed:
        if _done:
            return
        _done.append("yes")
        shell = _ipython()
        if shell is not None:
            if not getattr(shell, "custom_exceptions", ()):
                shell.set_custom_exc((Exception,), ipython_handler)
            return
        if not getattr(sys.excepthook, "spark_aoai", False):
            sys.excepthook = excepthook(sys.excepthook)


def _ipython() -> Any:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None) if ipython is not None else None
    return get() if get is not None else None


@contextmanager
def raised_clean() -> Iterator[None]:
    """Run a library action: a systemic failure inside it is raised as the ``SystemicError`` itself."""
    try:
        yield
    except SystemicError:
        raise
    except Exception as exc:
        found = systemic_of(exc)
        if found is None:
            raise
        found.spark_exception = exc  # type: ignore[attr-defined]  # Spark's own, with the executor's traceback
        raise found from None  # its line first, not after the worker's traceback

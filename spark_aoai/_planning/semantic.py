"""The semantic operators' prompts and outputs, as data: what ``ai.filter``, ``ai.join``, ``ai.agg`` and
``ai.top_k`` ask and how they read the answers. Free of pyspark.

Each prompt has one fixed shape (the emulator reads the same shapes, ``spark_aoai.emulator._semantic``):

- filter: ``Condition: <condition>`` then ``Text: <the row's text>``; the answer is ``{"holds": bool}``;
- join check: the condition with ``{left.x}`` read as "the left row's x", then ``Left row (x): ...`` and
  ``Right row (y): ...``; a listing (the classification plan) has ``Right rows (y):`` and ``[i] ...`` lines,
  answered ``{"matches": [i, ...]}``;
- aggregate: ``Task: <instruction>`` then ``- `` items (texts, or the answers of the level below);
- top-k: ``Criterion: <criterion>`` then ``Candidates:`` and ``[i] ...`` lines, answered ``{"ranking": [...]}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spark_aoai._planning.structured import Shape, StructuredOutput, obj
from spark_aoai._planning.template import Template
from spark_aoai.exceptions import ConfigurationError

FILTER_INSTRUCTIONS = (
    "Decide whether the user's text satisfies the condition given with it. Answer holds: true when it does, "
    "false when it does not."
)
PAIR_INSTRUCTIONS = (
    "Decide whether the condition holds for the left row and the right row given. Answer holds: true when it "
    "does, false when it does not."
)
LISTING_INSTRUCTIONS = (
    "The user gives a condition over a left row and a right row, one left row and numbered right rows. Answer "
    "matches: the numbers of the right rows for which the condition holds with the left row (empty when none)."
)
RANKING_INSTRUCTIONS = (
    "Rank the numbered candidates by how well each satisfies the criterion, best first. Answer ranking: every "
    "candidate's number, each once."
)
AGG_INSTRUCTIONS = "Carry out the task over all the items listed together, and answer once for all of them."
TEXTS_HEADER = "Texts:"
PARTIALS_HEADER = "Partial answers, each over a part of the texts; combine them into one answer:"

MATCHES_OUTPUT = StructuredOutput(
    obj([("matches", Shape("array", False, items=Shape("integer", False)))]), "matches", unwrap="matches"
)
RANKING_OUTPUT = StructuredOutput(
    obj([("ranking", Shape("array", False, items=Shape("integer", False)))]), "ranking", unwrap="ranking"
)


def matches_output(settings: object) -> StructuredOutput:
    return MATCHES_OUTPUT


def ranking_output(settings: object) -> StructuredOutput:
    return RANKING_OUTPUT


def one_line(text: str) -> str:
    """A value as one line of a list prompt (an item runs to the end of its line)."""
    return " ".join(str(text).split())


def filter_template(input_col: str, condition: str) -> str:
    """``ai.filter``'s prompt template: the condition (a template over columns) and the row's text."""
    Template.parse(condition, "condition")
    if "{" in input_col or "}" in input_col:
        raise ConfigurationError(f"inputCol: {input_col!r} cannot hold braces")
    return f"Condition: {condition}\n\nText: {{{input_col}}}"


@dataclass(frozen=True)
class PairCondition:
    """A join condition over ``{left.x}`` and ``{right.y}``: the columns each side reads, and the condition as
    the prompt says it ("the left row's x")."""

    left: tuple[str, ...]
    right: tuple[str, ...]
    described: str

    @classmethod
    def parse(cls, condition: str) -> PairCondition:
        template = Template.parse(condition, "condition")
        sides: dict[str, list[str]] = {"left": [], "right": []}
        for name in template.fields:
            side, _, column = name.partition(".")
            if side not in sides or not column:
                raise ConfigurationError(
                    f"condition: {{{name}}} names no side; write {{left.<column>}} or {{right.<column>}}"
                )
            sides[side].append(column)
        if not sides["left"] or not sides["right"]:
            raise ConfigurationError(
                "condition must read both sides, e.g. '{left.title} and {right.title} name the same product'"
            )
        described = "".join(
            literal.replace("{", "{{").replace("}", "}}")
            + (f"the {name.partition('.')[0]} row's {name.partition('.')[2]}" if name else "")
            for literal, name in template.parts
        )
        return cls(tuple(dict.fromkeys(sides["left"])), tuple(dict.fromkeys(sides["right"])), described)

    def pair_template(self, left: Sequence[str], right: Sequence[str]) -> str:
        """The check's prompt template over the pair table's columns ``left`` / ``right`` (one per field)."""
        return (
            f"Condition: {self.described}\n\n"
            f"Left row ({' | '.join(self.left)}): {' | '.join('{' + c + '}' for c in left)}\n\n"
            f"Right row ({' | '.join(self.right)}): {' | '.join('{' + c + '}' for c in right)}"
        )

    def listing_template(self, left: Sequence[str], listing: str) -> str:
        """The classification plan's prompt template: the left row's fields and the right rows' ``listing``
        column (``[i] ...`` lines)."""
        return (
            f"Condition: {self.described}\n\n"
            f"Left row ({' | '.join(self.left)}): {' | '.join('{' + c + '}' for c in left)}\n\n"
            f"Right rows ({' | '.join(self.right)}):\n{{{listing}}}"
        )


def numbered(texts: Sequence[str]) -> str:
    """``[0] first``, ``[1] second``, ... one a line."""
    return "\n".join(f"[{i}] {one_line(t)}" for i, t in enumerate(texts))


def ranking_prompt(criterion: str, texts: Sequence[str]) -> str:
    return f"Criterion: {one_line(criterion)}\n\nCandidates:\n{numbered(texts)}"


def agg_prompt(instruction: str, items: Sequence[str], level: int) -> str:
    """A map (level 1: the texts) or reduce (the answers of the level below) prompt."""
    header = TEXTS_HEADER if level == 1 else PARTIALS_HEADER
    return f"Task: {one_line(instruction)}\n\n{header}\n" + "\n".join(f"- {one_line(t)}" for t in items)


def chunks(tokens: Sequence[int], budget: int) -> list[int]:
    """Each item's chunk number: items in order, a new chunk when the next would pass ``budget`` tokens (an
    item over the budget alone is a chunk of its own).

    >>> chunks([3, 3, 3, 5, 1], 6)
    [0, 0, 1, 2, 2]
    """
    out, used, chunk = [], 0, 0
    for count in tokens:
        if used and used + count > budget:
            chunk, used = chunk + 1, 0
        out.append(chunk)
        used += count
    return out


def top_of(ranking: Sequence[int] | None, size: int, k: int) -> list[int]:
    """The first ``k`` distinct valid numbers of an answered ranking, then the unranked ones in their order
    (the prefilter's): an answer that skips or repeats candidates still yields k of them."""
    seen = [n for n in dict.fromkeys(ranking or []) if isinstance(n, int) and 0 <= n < size]
    rest = [n for n in range(size) if n not in set(seen)]
    return (seen + rest)[:k]

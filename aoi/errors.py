"""Exception hierarchy shared by every amurwatch package.

``AmurwatchError`` is the one base class. ``aoi`` sits at the bottom of the import graph, so the
base lives here and the other packages (sources, outputs, flows, demo) subclass it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AmurwatchError", "AoiError", "AoiProblem", "AoiValidationError"]


class AmurwatchError(Exception):
    """Base class of every error amurwatch raises on purpose."""


class AoiError(AmurwatchError):
    """A problem with an area-of-interest file or a landscape."""


@dataclass(frozen=True)
class AoiProblem:
    """One problem found in an AOI file.

    Attributes
    ----------
    where : str
        Which part of the file: ``"file"``, or ``"feature 3 (id 'zhalong')"``.
    what : str
        What is wrong, naming the offending value.
    fix : str
        How to fix it.
    """

    where: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}\n    fix: {self.fix}"


class AoiValidationError(AoiError, ValueError):
    """An AOI file failed validation. ``problems`` lists every problem found, not just the first."""

    def __init__(self, source: str, problems: list[AoiProblem]):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"{source}: {n} problem{'s' if n != 1 else ''} found; nothing was processed."]
        lines += [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        super().__init__("\n".join(lines))

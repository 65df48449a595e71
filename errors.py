"""The one small exception hierarchy of latkit.

Every error a user can cause is a ``LatkitError``: the CLI prints its message on one line and exits
with status 2. Messages say what was expected, what was found, and how to fix it. Anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class LatkitError(Exception):
    """Base class: a user-facing error (bad input, missing file, unreachable device...)."""

    exit_code = 2


class ArchError(LatkitError, ValueError):
    """An architecture config that is malformed or not in its search space."""


class SpaceError(LatkitError, KeyError):
    """An unknown search space name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class OutputError(LatkitError):
    """An output path that cannot be written safely (a device node, FIFO, symlink or directory)."""


class ExportError(LatkitError):
    """A model could not be exported (or the output path is unusable)."""


class DeviceError(LatkitError):
    """A device could not run a benchmark (unknown device, unreachable, failed run)."""


class ParseError(DeviceError):
    """Output of an external tool did not have the expected form (carries the offending text)."""


class StoreError(LatkitError):
    """The measurement store or a lookup table is missing or corrupt."""


class LookupMiss(LatkitError, KeyError):
    """A lookup-table key is missing; the message names the key and the command that fills it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PredictorError(LatkitError):
    """A predictor file is malformed, for another space, or used before fitting."""


class NotFittedError(PredictorError):
    """A predictor was used before ``fit``."""


class BudgetError(LatkitError):
    """A latency budget no subnet of the space can meet."""


class TrainError(LatkitError):
    """A training run was misconfigured (bad data directory, checkpoint mismatch...)."""

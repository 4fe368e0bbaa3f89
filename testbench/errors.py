"""One error hierarchy for every mistake a user can make.

Every message says *where* (file:line:col, node, key path), *what* was received, the *rule* and the
*fix*. The CLI prints these messages without a traceback and exits with status 2.
"""

from __future__ import annotations

from dataclasses import dataclass


class TestbenchError(Exception):
    """Root of every error this package raises on purpose (user input, data, weights, settings)."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class Problem:
    """One problem found in a graph, located precisely.

    Parameters
    ----------
    message : str
        What is wrong, the value received and the rule.
    file : str
        Path of the YAML file (``"<string>"`` for text).
    line, col : int
        1-based position of the offending key or value; 0 when unknown.
    node : str
        Node instance name, or ``""`` for graph-level problems.
    key : str
        Dotted key path inside the node (``"settings.frequency"``), or ``""``.
    fix : str
        What to do about it (may be ``""``).
    """

    message: str
    file: str = "<string>"
    line: int = 0
    col: int = 0
    node: str = ""
    key: str = ""
    fix: str = ""

    def __str__(self) -> str:
        # a value from the command line (file "--set NODE.KEY") has no line and column
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        who = f" node '{self.node}'" if self.node else ""
        key = f" [{self.key}]" if self.key else ""
        fix = f"\n    fix: {self.fix}" if self.fix else ""
        return f"{where}:{who}{key} {self.message}{fix}"


class GraphError(TestbenchError):
    """A graph failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in graph:"
        super().__init__("\n".join([head, *("  " + str(p) for p in self.problems)]))


class RegistryError(TestbenchError):
    """A node could not be registered or looked up (duplicate name, bad signature, unknown type)."""


class DuplicateNodeError(RegistryError):
    """Two functions register one node type name (a plugin clashing with another or a built-in)."""


class SettingsError(TestbenchError):
    """A node setting has a wrong type or is out of its valid range.

    Parameters
    ----------
    message : str
        What is wrong, the rule and the fix.
    setting : str, optional
        Name of the offending setting; the preflight locates the problem at its key in the graph.
    """

    def __init__(self, message: str, *, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class WeightsError(TestbenchError):
    """A weights file is missing, malformed, or holds values the simulator refuses (NaN/Inf)."""


class DataError(TestbenchError):
    """A dataset file is missing, corrupt or malformed."""


class NodeError(TestbenchError):
    """A node failed while running; the message names the node and the original error."""


class BackendError(TestbenchError):
    """A compute backend was asked for but is not available (e.g. ``backend: cuda`` without a GPU)."""


class OutputError(TestbenchError):
    """An output path (store, report folder, sink file) cannot be used or read: it holds something
    testbench did not write, is protected, or the store there is incomplete, damaged or too new."""


class PluginWarning(UserWarning):
    """A third-party node plugin failed to load and was skipped; the message names it and the fix."""


def did_you_mean(word: str, choices) -> str:
    """Return ``"did you mean 'x'?"`` for the closest of ``choices``, or list the choices."""
    import difflib

    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not choices:
        return ""
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"valid choices: {shown}"

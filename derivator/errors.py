"""The project's exceptions, in one place.

::

    DerivatorError                 every error the project raises on purpose
    ├── InputError                 the user's input is wrong: exit status 2
    │   ├── DefinitionError        a definition file (or dict) is malformed
    │   │   └── ExpressionError    an expression in it cannot be parsed
    │   └── UsageError             a command's arguments do not fit the definition
    └── VerificationError          a derivation failed its own check: exit status 1

Every ``InputError`` renders as one line: ``FILE:LINE:COL: what is wrong``
(the parts that are known), followed by a hint when there is one.
"""
from __future__ import annotations


class DerivatorError(Exception):
    """Base class of every error the project raises on purpose."""

    exit_status = 1


class InputError(DerivatorError):
    """Bad input: a definition, an expression or a command-line argument."""

    exit_status = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 column: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.hint = hint

    def located(self, source: str | None = None, line: int | None = None,
                column: int | None = None) -> "InputError":
        """Fill in the location parts that are still unknown; returns self."""
        if self.source is None:
            self.source = source
        if self.line is None:
            self.line = line
        if self.column is None:
            self.column = column
        return self

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.source, self.line, self.column) if p is not None)
        text = f"{where}: {self.message}" if where else self.message
        offset = getattr(self, "offset", None)
        if self.column is None and offset is not None:
            text += f" at character {offset + 1} of the expression"
        if self.hint:
            text += f" ({self.hint})"
        return one_line(text)


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    if not text.isprintable():   # no terminal control sequences from user text
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DefinitionError(InputError):
    """A definition is malformed: YAML, keys, names, network sizes, values."""


class ExpressionError(DefinitionError):
    """An expression in a definition cannot be parsed or is not allowed.

    ``offset`` is the 0-based position of the problem in the expression's
    text; the loader turns it into a file column where it can.
    """

    def __init__(self, message: str, *, offset: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.offset = offset


class UsageError(InputError):
    """Command-line or API arguments that do not fit the definition."""


class VerificationError(DerivatorError):
    """A derivation step or result did not pass its check."""

    exit_status = 1

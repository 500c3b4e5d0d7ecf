"""The records that flow from the engine to ``apply`` and ``check``: one vocabulary for both."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: What reading and parsing a source file can raise: the file is reported as not parsing.
#: RecursionError and MemoryError are the parser's own limits (e.g. a generated file with a
#: 3000-term expression), which CPython cannot compile either.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    SyntaxError,
    ValueError,
    UnicodeDecodeError,
    RecursionError,
    MemoryError,
)


class Code(StrEnum):
    """Stable finding codes; never renumber."""

    MISSING_ARGUMENT = "EM001"
    MISSING_PARAMETER = "EM002"
    SIGNATURE_DRIFT = "EM003"
    POSITIONAL_SLIDE = "EM004"
    STORAGE_MISSING_COMPANION = "EM005"
    COMPANION_UNUSED = "EM006"


class Tier(StrEnum):
    """How a site was matched to the spec."""

    #: The receiver or class was resolved through the index (types, hierarchy, protocols).
    RESOLVED = "resolved"
    #: Matched by method name and arity only.
    NAME = "name"


@dataclass(frozen=True, slots=True)
class Finding:
    """One site that breaks (or would break) at runtime, and what ``apply`` does about it.

    ``fix`` is the edit ``apply`` would make, as a short human-readable text; when the tool can
    not derive a value, ``fix`` is None and ``unfixable_reason`` says why.
    """

    path: str
    line: int
    col: int
    code: Code
    message: str
    tier: Tier
    fix: str | None = None
    unfixable_reason: str | None = None

    @property
    def fixable(self) -> bool:
        return self.fix is not None


class EditKind(StrEnum):
    """What a planned edit changes (the summary counts sites by kind)."""

    PARAMETER = "parameter"
    DOCSTRING = "docstring"
    ARGUMENT = "argument"
    RENAME = "rename"
    DICT_ENTRY = "dict-entry"
    STATEMENT = "statement"


#: (start line, start column, end line, end column): lines 1-based, columns 0-based characters,
#: the node itself without surrounding parentheses (libcst's PositionProvider convention).
Span = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Edit:
    """One planned change to one node, with the reason and the derivation of its value.

    ``anchor`` locates the node the rewriter changes (a def, call, dict, name, string or
    statement). ``text`` is the source inserted (a value, a parameter, a statement, a new
    literal or a new name). ``after`` is the features parameter name (PARAMETER), the features
    argument (ARGUMENT: positional index or keyword name) or the dict key literal (DICT_ENTRY).
    """

    kind: EditKind
    path: str
    line: int
    col: int
    code: Code
    tier: Tier
    reason: str
    derivation: str
    anchor: Span
    text: str
    after: str | int | None = None
    positional: bool = False
    #: Key text for DICT_ENTRY; annotation for PARAMETER (text holds the name).
    extra: str | None = None

    def describe(self) -> str:
        return f"{self.kind.value}: {self.reason}; {self.derivation}"


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A site the engine cannot change without guessing: left as it is and reported.

    ``col`` is 0-based like :class:`Edit`'s; findings (1-based) add one.
    """

    path: str
    line: int
    col: int
    code: Code
    tier: Tier
    reason: str
    suggestion: str

    def to_finding(self, message: str) -> Finding:
        return Finding(
            path=self.path,
            line=self.line,
            col=self.col + 1,
            code=self.code,
            message=message,
            tier=self.tier,
            fix=None,
            unfixable_reason=f"{self.reason}; suggested edit: {self.suggestion}",
        )

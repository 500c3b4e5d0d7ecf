"""The records that flow from the engine to ``apply`` and ``check``: one vocabulary for both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    FORBIDDEN_CALL = "EM007"
    UNUSED_SUPPRESSION = "EM100"


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
    literal or a new name). ``after`` is the parameter the new one follows (PARAMETER; None
    with ``first``), the argument the value follows (ARGUMENT: positional index or keyword
    name; None: last, or ``first``) or the dict key literal (DICT_ENTRY).
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
    #: Key text for DICT_ENTRY; annotation for PARAMETER (text holds the name); the keyword
    #: for ARGUMENT.
    extra: str | None = None
    #: ARGUMENT: the source text of the argument the value follows (for the fix text).
    follows: str | None = None
    #: PARAMETER: the default's source text, written verbatim (None: a required parameter).
    default: str | None = None
    #: ARGUMENT: the first argument; PARAMETER: first of its group (``after`` is then None).
    first: bool = False
    #: PARAMETER: keyword-only (after ``*``/``*args``; a bare ``*`` is added where neither is).
    keyword_only: bool = False

    def describe(self) -> str:
        """The edit as one imperative phrase (the fix text of its unit is made of these)."""
        kind = self.kind
        if kind is EditKind.ARGUMENT:
            if self.first:
                value = self.text if self.positional else f"{self.extra}={self.text}"
                how = "positionally " if self.positional else ""
                return f"pass `{value}` {how}as the first argument"
            if self.positional:
                return f"pass `{self.text}` positionally right after `{self.follows}`"
            if self.after is None:
                return f"pass `{self.extra}={self.text}` as the last argument"
            return f"pass `{self.extra}={self.text}` right after `{self.follows}`"
        if kind is EditKind.PARAMETER:
            spelled = f"{self.text}: {self.extra}" if self.extra else self.text
            if self.default is not None:
                spelled += f" = {self.default}" if self.extra else f"={self.default}"
            what = "keyword-only parameter" if self.keyword_only else "parameter"
            if self.after is not None:
                return f"insert {what} `{spelled}` after `{self.after}`"
            if self.keyword_only:
                return f"insert {what} `{spelled}` first after `*`"
            return f"insert {what} `{spelled}` first"
        if kind is EditKind.DOCSTRING:
            return "document it in the docstring's `Args:`"
        if kind is EditKind.RENAME:
            return f"rename `{self.after}` to `{self.text}` (line {self.line})"
        if kind is EditKind.DICT_ENTRY:
            return (
                f"add `{self.extra}: {self.text}` after the {self.after} entry (line {self.line})"
            )
        return f"insert `{self.text}` after line {self.anchor[2]}"


def render_fix(edits: Sequence[Edit]) -> str:
    """The fix text of a unit: its edits, in file order, each as one phrase."""
    ordered = sorted(edits, key=lambda e: (e.anchor[0], e.anchor[1], e.kind.value))
    return "; ".join(dict.fromkeys(e.describe() for e in ordered))


@dataclass(frozen=True, slots=True)
class Unit:
    """One root cause: one finding, and the edits that fix it (all of them land, or none).

    A unit without edits is unresolved: ``apply`` leaves every site of it alone and reports
    ``reason`` with ``suggestion``; ``check`` reports it as an unfixable finding. ``col`` is
    0-based like :class:`Edit`'s; findings (1-based) add one.
    """

    path: str
    line: int
    col: int
    code: Code
    tier: Tier
    message: str
    edits: tuple[Edit, ...] = ()
    reason: str | None = None
    suggestion: str | None = None

    @property
    def resolved(self) -> bool:
        return bool(self.edits)

    @property
    def fix(self) -> str | None:
        return render_fix(self.edits) if self.edits else None

    def finding(self) -> Finding:
        return Finding(
            path=self.path,
            line=self.line,
            col=self.col + 1,
            code=self.code,
            message=self.message,
            tier=self.tier,
            fix=self.fix,
            unfixable_reason=None
            if self.edits
            else f"{self.reason}; suggested edit: {self.suggestion}",
        )

    def unresolved(self, reason: str, suggestion: str) -> Unit:
        """This unit with its edits withdrawn (a part of it cannot be planned)."""
        return replace(self, edits=(), reason=reason, suggestion=suggestion)

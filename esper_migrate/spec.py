"""The migration spec: which parameters are threaded through which definitions, calls and
storage, and which calls are forbidden where.

A spec is TOML validated by pydantic (``extra="forbid"``: a misspelt field is an error that
names it); the Phase 4 spec ships in ``esper_migrate/specs/``. Format 2 (``version = 2``) is
the current one; a format-1 file (a single ``[parameter]`` table with top-level ``[[targets]]``)
is upgraded on load by :func:`upgrade_v1`, and ``esper-migrate spec upgrade FILE`` prints the
format-2 text. An invalid spec raises :class:`SpecError` whose message is pydantic's.

Everything a spec contributes to the code ``apply`` writes is validated here, before any file
is touched: names must be identifiers that are not keywords (``class`` parses as a name in
TOML, not in Python), annotations, defaults and dtypes must parse as Python expressions, and
the docstring line must fit inside a docstring. Otherwise the rewriter's last check (the
rewritten file must parse) would refuse file after file and leave the tree half migrated.
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import re
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

#: The spec format this version writes and reads natively.
SPEC_VERSION = 2


class SpecError(ValueError):
    """A spec file that cannot be read or does not validate."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"not a Python identifier: {value!r}")
    if keyword.iskeyword(value):
        raise ValueError(f"{value!r} is a Python keyword, not usable as a name")
    return value


def _dotted_name(value: str) -> str:
    if not _DOTTED.match(value):
        raise ValueError(f"not a dotted name: {value!r}")
    for part in value.split("."):
        _identifier(part)
    return value


def _expression(value: str) -> str:
    """``value`` if it parses as one Python expression (it is written into the code)."""
    try:
        ast.parse(value, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise ValueError(f"not a Python expression: {value!r} ({detail})") from None
    if "\n" in value or "\r" in value:
        raise ValueError(f"must fit on one line: {value!r}")
    return value


def _import_statement(value: str) -> str:
    try:
        tree = ast.parse(value)
    except SyntaxError as exc:
        raise ValueError(f"not a Python import statement: {value!r} ({exc.msg})") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Import | ast.ImportFrom):
        raise ValueError(f"not one import statement: {value!r}")
    return value


class Placement(_Model):
    """Where the new parameter goes in a signature. At most one of ``after``, ``before`` and
    ``position``; ``index`` is the fallback when the named neighbour is absent.

    A positional parameter lands among the positional parameters (``self``/``cls`` aside). A
    keyword-only one (``keyword_only = true``) lands among the keyword-only parameters: right
    after or before the one ``after``/``before`` names, first with ``position = "first"``,
    else last (a bare ``*`` is added where the signature has neither ``*`` nor ``*args``)."""

    #: Right after the parameter of this name.
    after: str | None = None
    #: Right before the parameter of this name.
    before: str | None = None
    #: First or last of the positional parameters (after ``self``), or of the keyword-only ones.
    position: Literal["first", "last"] | None = None
    #: Right after the parameter at this index (0 = first parameter after ``self``).
    index: int = Field(default=0, ge=0)
    #: Keyword-only (after ``*`` or ``*args``): never shifts a positional argument.
    keyword_only: bool = False

    @field_validator("after", "before")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _identifier(value)

    def position_in(self, names: list[str]) -> int | None:
        """Where the new parameter lands among the positional parameters ``names`` (``self``
        and the new one aside): its index once inserted. None when neither the named
        neighbour nor the index fallback applies."""
        if self.after is not None and self.after in names:
            return names.index(self.after) + 1
        if self.before is not None and self.before in names:
            return names.index(self.before)
        if self.position == "last":
            return len(names)
        if self.position == "first":
            return 0
        return self.index + 1 if len(names) > self.index else None

    def keyword_position_in(self, names: list[str]) -> int:
        """Where a keyword-only parameter lands among the keyword-only parameters ``names``."""
        if self.after is not None and self.after in names:
            return names.index(self.after) + 1
        if self.before is not None and self.before in names:
            return names.index(self.before)
        return 0 if self.position == "first" else len(names)

    @model_validator(mode="after")
    def _one_anchor(self) -> Placement:
        given = [k for k in ("after", "before", "position") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of after, before, position (got {given})")
        return self


class TargetSpec(_Model):
    """Definitions that gain the parameter: methods named by class or protocol, or a
    module-level function (``kind = "function"``, ``name`` the function, no ``methods``)."""

    name: str
    kind: Literal["class", "protocol", "function"] = "class"
    methods: list[str] = Field(default_factory=list, validate_default=True)
    #: Where the parameter goes in these methods (default: the parameter's placement).
    placement: Placement | None = None
    #: Where it goes in one method of the target (over ``placement``).
    method_placement: dict[str, Placement] = Field(default_factory=dict)

    def placement_for(self, method: str) -> Placement | None:
        return self.method_placement.get(method, self.placement)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        return _identifier(value)

    @field_validator("methods")
    @classmethod
    def _methods_fit_kind(cls, value: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("kind", "class")
        if kind == "function" and value:
            raise ValueError("a function target has no methods (it is the function `name`)")
        if kind != "function" and not value:
            raise ValueError(f"List should have at least 1 item: a {kind} target's methods")
        return [_identifier(v) for v in value]


class ProducerSpec(_Model):
    """A function whose tuple result carries the features and their companion."""

    name: str
    features_index: int = Field(default=0, ge=0)
    companion_index: int = Field(default=1, ge=0)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        return _identifier(value)


class StorageSpec(_Model):
    """A class that stores the features in ``field`` and must keep the companion beside it."""

    class_name: str
    field: str
    add_method: str = "add"
    batched_method: str | None = None
    #: Names (parameter of ``__init__`` or ``self.<name>``) that hold the number of slots.
    num_slots_names: list[str] = Field(default_factory=lambda: ["num_slots"])
    fill_value: int = -1
    dtype: str = "torch.long"

    @field_validator("class_name", "field", "add_method", "batched_method")
    @classmethod
    def _names_are_identifiers(cls, value: str | None) -> str | None:
        return None if value is None else _identifier(value)

    @field_validator("num_slots_names")
    @classmethod
    def _slots_names_are_identifiers(cls, value: list[str]) -> list[str]:
        return [_identifier(v) for v in value]

    @field_validator("dtype")
    @classmethod
    def _dtype_parses(cls, value: str) -> str:
        return _expression(value)


class ValueSource(_Model):
    """One way to find the value a call passes for the parameter (tried in the listed order).

    ``companion``: derived by data flow from the call's features argument (producers, dict
    keys, transforms, the enclosing target's parameter, test synthesis). ``self``:
    ``self.<attr>`` where the call sits in a method of a class that assigns it. ``parameter``:
    the enclosing function's parameter of the parameter's name. ``constant``: ``value``,
    written verbatim."""

    kind: Literal["companion", "self", "parameter", "constant"]
    #: ``self``: the attribute (default: the parameter's name).
    attr: str | None = None
    #: ``constant``: the expression written at the call.
    value: str | None = None

    @field_validator("attr")
    @classmethod
    def _attr(cls, value: str | None) -> str | None:
        return None if value is None else _identifier(value)

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None) -> str | None:
        return None if value is None else _expression(value)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> ValueSource:
        if self.kind == "constant" and self.value is None:
            raise ValueError("a constant source needs `value`")
        if self.kind != "constant" and self.value is not None:
            raise ValueError(f"`value` belongs to a constant source, not {self.kind!r}")
        if self.kind != "self" and self.attr is not None:
            raise ValueError(f"`attr` belongs to a self source, not {self.kind!r}")
        return self


class ParameterSpec(_Model):
    """One new parameter: its signature, where it goes, and what passes it."""

    name: str
    #: Written verbatim into every signature that gains the parameter.
    annotation: str | None = None
    #: Source text of the default, written verbatim; None for a required parameter.
    default: str | None = None
    #: Import statement for each name the annotation needs, added where a module lacks it.
    imports: dict[str, str] = Field(default_factory=dict)
    placement: Placement = Field(default_factory=Placement)
    #: Whether calls must pass an optional parameter (a required one must always be passed).
    require_at_calls: bool = False
    #: Where a call's value comes from, tried in this order (default: the companion only).
    sources: list[ValueSource] = Field(
        default_factory=lambda: [ValueSource(kind="companion")], min_length=1
    )
    #: A target ``__init__`` that gains the parameter also stores it: ``self.<name> = <name>``.
    store_on_self: bool = False
    #: Line added to docstring ``Args:`` sections (after the features entry); None: no docs.
    docstring: str | None = None
    targets: list[TargetSpec] = Field(min_length=1)
    producers: list[ProducerSpec] = Field(default_factory=list)
    storage: list[StorageSpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        return _identifier(value)

    @field_validator("annotation", "default")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        return None if value is None else _expression(value)

    @field_validator("imports")
    @classmethod
    def _imports(cls, value: dict[str, str]) -> dict[str, str]:
        for name, statement in value.items():
            _identifier(name)
            _import_statement(statement)
        return value

    @field_validator("docstring")
    @classmethod
    def _fits_a_docstring(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for bad, what in (("\n", "a line break"), ("\r", "a line break"), ("\\", "a backslash")):
            if bad in value:
                raise ValueError(f"must be one docstring line without {what}")
        if '"""' in value or "'''" in value:
            raise ValueError("must not contain triple quotes (it goes inside a docstring)")
        return value

    @property
    def after_position(self) -> int:
        """The index fallback of the placement (the engine's structural matching uses it)."""
        return self.placement.index

    @property
    def optional(self) -> bool:
        return self.default is not None


class FeaturesSpec(_Model):
    """How the features tensor (the value the parameter travels with) is spelled."""

    stems: list[str] = Field(default_factory=lambda: ["features", "states", "state", "obs"])
    keys: list[str] = Field(default_factory=lambda: ["state", "states", "obs", "features"])

    @field_validator("stems")
    @classmethod
    def _stems_are_identifiers(cls, value: list[str]) -> list[str]:
        for stem in value:
            if not _IDENT.match(stem):
                raise ValueError(f"not part of a Python name: {stem!r}")
        return value


class SynthesisSpec(_Model):
    """Values synthesised in tests where no producer is in scope."""

    constructors: list[str] = Field(
        default_factory=lambda: ["torch.randn", "torch.rand", "torch.zeros", "torch.ones"]
    )
    num_blueprints: int = Field(default=13, ge=1)
    num_slots_keyword: str = "num_slots"
    num_slots_default: int | None = Field(default=3, ge=1)
    random_call: str = "torch.randint"

    @field_validator("constructors")
    @classmethod
    def _dotted(cls, value: list[str]) -> list[str]:
        return [_dotted_name(item) for item in value]

    @field_validator("random_call")
    @classmethod
    def _random_call_is_dotted(cls, value: str) -> str:
        return _dotted_name(value)

    @field_validator("num_slots_keyword")
    @classmethod
    def _keyword_is_identifier(cls, value: str) -> str:
        return _identifier(value)


class ExemptSpec(_Model):
    context_managers: list[str] = Field(default_factory=lambda: ["pytest.raises"])

    @field_validator("context_managers")
    @classmethod
    def _dotted(cls, value: list[str]) -> list[str]:
        return [_dotted_name(item) for item in value]


class ForbiddenCallSpec(_Model):
    """A call that must not appear outside the files ``allowed_in`` names."""

    #: The callee's name (``get_value`` matches ``x.get_value(...)`` and ``get_value(...)``) or
    #: a dotted suffix (``net.get_value``).
    callee: str
    #: Path globs (``fnmatch``, against the path relative to the checked root, ``/``-separated)
    #: of the files where the call is allowed.
    allowed_in: list[str] = Field(default_factory=list)
    #: Globs over the names of the enclosing functions where the call is allowed (a call inside
    #: any enclosing function that matches is allowed).
    allowed_functions: list[str] = Field(default_factory=list)
    reason: str = Field(min_length=1)

    @field_validator("callee")
    @classmethod
    def _callee(cls, value: str) -> str:
        return _dotted_name(value)


class MigrationSpec(_Model):
    """One migration: parameters threaded through definitions, calls and storage."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    version: Literal[2] = 2
    parameters: list[ParameterSpec] = Field(min_length=1)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    synthesis: SynthesisSpec = Field(default_factory=SynthesisSpec)
    exempt: ExemptSpec = Field(default_factory=ExemptSpec)
    forbidden_calls: list[ForbiddenCallSpec] = Field(default_factory=list)
    #: Hash of the source text, for cache keys (set by the loaders).
    source_hash: str = ""

    @model_validator(mode="after")
    def _engine_supports(self) -> MigrationSpec:
        names = [p.name for p in self.parameters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"parameters: {dupes} given more than once")
        for i, p in enumerate(self.parameters):
            for j, t in enumerate(p.targets):
                for m in t.method_placement:
                    if m not in t.methods:
                        raise ValueError(
                            f"parameters.{i}.targets.{j}.method_placement: `{m}` is not one of "
                            f"the target's methods {t.methods}"
                        )
        return self

    @property
    def parameter(self) -> ParameterSpec:
        """The parameter the engine threads: a one-parameter spec's (see :meth:`threads`)."""
        return self.parameters[0]

    def threads(self) -> list[MigrationSpec]:
        """One single-parameter spec per ``[[parameters]]`` entry, in order: the engine plans
        one parameter at a time, each on the tree the previous one migrated (one migration:
        ``apply`` writes once). The call restrictions go with the first (reported once)."""
        if len(self.parameters) == 1:
            return [self]
        # Validated afresh (not model_copy): the cached name sets belong to each thread.
        data = self.model_dump()
        return [
            MigrationSpec.model_validate(
                {
                    **data,
                    "parameters": [p],
                    "forbidden_calls": data["forbidden_calls"] if i == 0 else [],
                    "source_hash": f"{self.source_hash}-{i}",
                }
            )
            for i, p in enumerate(data["parameters"])
        ]

    @property
    def targets(self) -> list[TargetSpec]:
        return self.parameter.targets

    @property
    def producers(self) -> list[ProducerSpec]:
        return self.parameter.producers

    @property
    def storage(self) -> list[StorageSpec]:
        return self.parameter.storage

    @cached_property
    def target_methods(self) -> frozenset[str]:
        return frozenset(m for t in self.targets for m in t.methods)

    @cached_property
    def target_functions(self) -> frozenset[str]:
        """Module-level functions that gain the parameter."""
        return frozenset(t.name for t in self.targets if t.kind == "function")

    @cached_property
    def names(self) -> frozenset[str]:
        """Every name whose presence in a file's text makes it a candidate for analysis."""
        out: set[str] = set(self.target_methods)
        out.update(t.name for t in self.targets)
        out.update(p.name for p in self.producers)
        for s in self.storage:
            out.update({s.class_name, s.add_method})
            if s.batched_method:
                out.add(s.batched_method)
        # A file that only calls a forbidden callee must still be parsed and linted.
        out.update(f.callee.rsplit(".", 1)[-1] for f in self.forbidden_calls)
        return frozenset(out)

    @cached_property
    def prefilter(self) -> re.Pattern[str]:
        """One compiled regex over every spec name: a file that does not match is never parsed."""
        alternatives = "|".join(sorted((re.escape(n) for n in self.names), key=len, reverse=True))
        return re.compile(rf"\b(?:{alternatives})\b")


# -- format 1 ---------------------------------------------------------------------------------


def is_v1(data: dict[str, Any]) -> bool:
    """A format-1 spec: no ``version`` key and a single ``[parameter]`` table."""
    return "version" not in data and "parameter" in data


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """The format-2 data of a format-1 spec: ``[parameter]`` with the top-level ``targets``,
    ``producers`` and ``storage`` becomes the one entry of ``[[parameters]]``, and
    ``after_position`` becomes ``placement.index``. Anything else is carried as it is (and
    validated as format 2, so a misspelt field is still named)."""
    data = dict(data)
    old = data.pop("parameter")
    param: dict[str, Any] = dict(old) if isinstance(old, dict) else {"name": old}
    if "after_position" in param:
        param["placement"] = {"index": param.pop("after_position")}
    for key in ("targets", "producers", "storage"):
        if key in data:
            param[key] = data.pop(key)
    return {"version": SPEC_VERSION, "parameters": [param], **data}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}" if inner else "{}"
    raise TypeError(f"_toml_value: cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else json.dumps(key)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _toml_table(path: str, data: dict[str, Any], array: bool, out: list[str]) -> None:
    out.append(f"[[{path}]]" if array else f"[{path}]")
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested.append((key, value))
        else:
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out.append("")
    for key, value in nested:
        for item in value:
            _toml_table(f"{path}.{_toml_key(key)}", item, True, out)


def to_toml(data: dict[str, Any]) -> str:
    """Spec data as TOML text (scalars first, then tables, then arrays of tables)."""
    out: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if _is_table(value):
            tables.append((key, value))
        else:
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    if out:
        out.append("")
    for key, value in tables:
        if isinstance(value, dict):
            _toml_table(_toml_key(key), value, False, out)
        else:
            for item in value:
                _toml_table(_toml_key(key), item, True, out)
    return "\n".join(out).rstrip("\n") + "\n"


def upgrade_text(text: str, origin: str = "<spec>") -> str:
    """The format-2 TOML of a format-1 spec text (validated, so it loads as it is)."""
    data = _load_toml(text, origin)
    if not is_v1(data):
        raise SpecError(f"{origin}: not a format-1 spec (it has `version` or no `[parameter]`)")
    upgraded = upgrade_v1(data)
    out = to_toml(upgraded)
    parse_spec(out, origin)
    return out


# -- loading ----------------------------------------------------------------------------------


def _load_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{origin}: invalid TOML: nested too deeply") from None


def parse_spec(text: str, origin: str = "<spec>") -> MigrationSpec:
    """Validate TOML text as a spec (format 2, or format 1 upgraded); errors name the file and
    the field."""
    data = _load_toml(text, origin)
    upgraded = is_v1(data)
    if upgraded:
        data = upgrade_v1(data)
    data["source_hash"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    try:
        return MigrationSpec.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {_field_path(e['loc'], upgraded)}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] != "missing" and _short(e["input"]) else "")
            for e in exc.errors()
        ]
        hint = (
            "\n(read as a format-1 spec; `esper-migrate spec upgrade FILE` prints it in format 2)"
            if upgraded
            else ""
        )
        count = len(lines)
        head = f"{origin}: {count} invalid field{'s' if count > 1 else ''}"
        raise SpecError("\n".join([head, *lines]) + hint) from None


def _short(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 80


def _field_path(loc: tuple[int | str, ...], v1: bool) -> str:
    """A pydantic error location as pydantic dots it (``parameters.0.name``); for a format-1
    file, as format 1 spells it (``parameter.name``, ``targets.2.methods``)."""
    parts = list(loc)
    if v1 and parts[:2] == ["parameters", 0]:
        rest = parts[2:]
        if rest and rest[0] in ("targets", "producers", "storage"):
            parts = rest
        elif rest[:2] == ["placement", "index"]:
            parts = ["parameter", "after_position"]
        else:
            parts = ["parameter", *rest]
    return ".".join(str(part) for part in parts) or "(spec)"


def builtin_spec_text() -> str:
    return resources.files("esper_migrate").joinpath("specs/phase4.toml").read_text("utf-8")


def read_spec_text(path: str | Path) -> str:
    from esper_migrate.discover import read_regular_file  # never blocks on a FIFO

    p = Path(path)
    try:
        return read_regular_file(p).decode("utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read spec: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{p}: cannot read spec: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); TOML files are UTF-8"
        ) from None


def load_spec(path: str | Path | None = None) -> MigrationSpec:
    """The spec at ``path``, or the built-in Phase 4 spec when ``path`` is None."""
    if path is None:
        return parse_spec(builtin_spec_text(), "phase4.toml (built-in)")
    return parse_spec(read_spec_text(path), str(path))

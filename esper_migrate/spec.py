"""The migration spec: which parameter is threaded through which definitions, calls and storage.

A spec is TOML validated by pydantic; the Phase 4 spec ships in ``esper_migrate/specs/``. An
invalid spec raises :class:`SpecError` whose message is pydantic's (it names the field).

Everything a spec contributes to the code ``apply`` writes is validated here, before any file
is touched: names must be identifiers that are not keywords (``class`` parses as a name in
TOML, not in Python), annotations, defaults and dtypes must parse as Python expressions, and
the docstring line must fit inside a docstring. Otherwise the rewriter's last check (the
rewritten file must parse) would refuse file after file and leave the tree half migrated.
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import re
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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


class ParameterSpec(_Model):
    """The new parameter."""

    name: str
    annotation: str | None = None
    #: Source text of the default, or None for a required parameter.
    default: str | None = None
    #: Inserted right after the parameter at this position (0 = first parameter after self).
    after_position: int = Field(default=0, ge=0)
    #: Line added to docstring ``Args:`` sections (after the features entry); None: no docs.
    docstring: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        return _identifier(value)

    @field_validator("annotation", "default")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        return None if value is None else _expression(value)

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


class TargetSpec(_Model):
    """Methods that gain the parameter, named by class or protocol."""

    name: str
    kind: Literal["class", "protocol"] = "class"
    methods: list[str] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        return _identifier(value)

    @field_validator("methods")
    @classmethod
    def _methods_are_identifiers(cls, value: list[str]) -> list[str]:
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


class MigrationSpec(_Model):
    """One migration: a parameter threaded through definitions, calls and storage."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    parameter: ParameterSpec
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    targets: list[TargetSpec] = Field(min_length=1)
    producers: list[ProducerSpec] = Field(default_factory=list)
    storage: list[StorageSpec] = Field(default_factory=list)
    synthesis: SynthesisSpec = Field(default_factory=SynthesisSpec)
    exempt: ExemptSpec = Field(default_factory=ExemptSpec)
    #: Hash of the source text, for cache keys (set by the loaders).
    source_hash: str = ""

    @cached_property
    def target_methods(self) -> frozenset[str]:
        return frozenset(m for t in self.targets for m in t.methods)

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
        return frozenset(out)

    @cached_property
    def prefilter(self) -> re.Pattern[str]:
        """One compiled regex over every spec name: a file that does not match is never parsed."""
        alternatives = "|".join(sorted((re.escape(n) for n in self.names), key=len, reverse=True))
        return re.compile(rf"\b(?:{alternatives})\b")


def parse_spec(text: str, origin: str = "<spec>") -> MigrationSpec:
    """Validate TOML text as a spec; errors name the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{origin}: invalid TOML: nested too deeply") from None
    data["source_hash"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    try:
        return MigrationSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{origin}: {exc}") from None


def builtin_spec_text() -> str:
    return resources.files("esper_migrate").joinpath("specs/phase4.toml").read_text("utf-8")


def load_spec(path: str | Path | None = None) -> MigrationSpec:
    """The spec at ``path``, or the built-in Phase 4 spec when ``path`` is None."""
    if path is None:
        return parse_spec(builtin_spec_text(), "phase4.toml (built-in)")
    from esper_migrate.discover import read_regular_file  # never blocks on a FIFO

    p = Path(path)
    try:
        text = read_regular_file(p).decode("utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read spec: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{p}: cannot read spec: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); TOML files are UTF-8"
        ) from None
    return parse_spec(text, str(p))

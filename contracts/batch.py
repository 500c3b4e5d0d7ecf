"""pydantic models of tensor batches: every tensor field has a spec, checked together.

    class Rollout(TensorBatch):
        states: Annotated[Tensor, TensorField("float32[env, step, obs_dim]")]
        masks: Annotated[dict[str, Tensor], TensorField("dict[str, bool[env, step, *]]")]

    batch = Rollout(states=s, masks=m)   # env and step must agree across all fields
    batch.dims                          # {"env": 4, "step": 16, "obs_dim": 114}

Fields are checked in declaration order with shared symbols (``contract_fixed`` fixes some,
``contract_derived`` ties some to others, as ``fixed=``/``derived=`` of ``@contract`` do).
Validation never converts or copies: each attribute is the very object passed in
(``batch.states is s``). A violation raises one :class:`BatchContractError`: a
:class:`ContractError` listing every problem (``str()`` is those lines) that is also a
``pydantic.ValidationError`` (so code catching that, or ``ValueError``, works as before).
Nested as a field of another pydantic model, it arrives inside that model's error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, PrivateAttr, ValidationError
from pydantic_core import CoreSchema, core_schema

from contracts.checker import Checker, DimValue
from contracts.dims import Expr, parse_derived
from contracts.errors import ContractError
from contracts.spec import Spec, SpecLike, spec
from contracts.switch import FULL, OFF, current_level

__all__ = ["BatchContractError", "TensorBatch", "TensorField"]


class BatchContractError(ContractError, ValidationError):
    """A :class:`TensorBatch` broke its contract: a ``ContractError`` and a pydantic
    ``ValidationError`` at once. ``errors()`` holds one ``value_error`` whose ``ctx["error"]``
    is the plain ``ContractError``."""

    def __str__(self) -> str:
        return "\n".join(self.violations)


class TensorField:
    """``Annotated`` marker giving a :class:`TensorBatch` field its spec.

    pydantic itself leaves such a field alone (no conversion, no copy, not even of a dict);
    the batch's contract check does all the checking.
    """

    __slots__ = ("spec",)

    def __init__(self, spec_like: SpecLike) -> None:
        self.spec: Spec = spec(spec_like)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.any_schema()

    def __repr__(self) -> str:
        return f"TensorField({str(self.spec)!r})"


class TensorBatch(BaseModel):
    """Base class of batch models whose tensor fields carry specs (see the module doc)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, hide_input_in_errors=True)

    #: Symbols fixed for every instance of the class, e.g. ``{"num_slots": 3}``.
    contract_fixed: ClassVar[Mapping[str, DimValue]] = {}
    #: Symbols tied to others for every instance, e.g. ``{"obs_dim": "24 + 30*num_slots"}``.
    contract_derived: ClassVar[Mapping[str, str]] = {}
    #: (field name, spec) of every field with a :class:`TensorField`, in declaration order.
    contract_fields: ClassVar[tuple[tuple[str, Spec], ...]] = ()
    _contract_relations: ClassVar[tuple[tuple[str, Expr], ...]] = ()

    _dims: dict[str, DimValue] = PrivateAttr(default_factory=dict)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        found: list[tuple[str, Spec]] = []
        for name, info in cls.model_fields.items():
            if isinstance(info.default, TensorField):
                # `x: Tensor = TensorField(...)` would make the marker a default value and
                # leave the field unchecked (and optional): refuse it where it is written.
                raise TypeError(
                    f"{cls.__name__}.{name}: write `{name}: Annotated[Tensor, "
                    f"{info.default!r}]`; a TensorField as the default value checks nothing"
                )
            for meta in info.metadata:
                if isinstance(meta, TensorField):
                    found.append((name, meta.spec))
        cls.contract_fields = tuple(found)
        cls._contract_relations = parse_derived(cls.contract_derived, cls.__name__)
        if cls._contract_relations or found:
            from contracts.plan import check_expressions

            check_expressions(
                cls.__name__,
                [s for _, s in found],
                set(cls.contract_fixed),
                cls._contract_relations,
            )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _unwrap(e) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as e:
            raise _unwrap(e) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as e:
            raise _unwrap(e) from None

    @classmethod
    def model_validate_strings(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_strings(obj, **kwargs)
        except ValidationError as e:
            raise _unwrap(e) from None

    def model_post_init(self, context: Any, /) -> None:
        level = current_level()
        if level == OFF or not self.contract_fields:
            return
        checker = Checker(full=level == FULL, derived=self._contract_relations)
        for sym, value in self.contract_fixed.items():
            checker.bind(sym, value, "fixed")
        for name, field_spec in self.contract_fields:
            checker.check(name, getattr(self, name), field_spec)
        checker.resolve()
        if checker.violations:
            raise ContractError.of(type(self).__name__, checker.violations)
        self._dims = checker.symbols

    @property
    def dims(self) -> dict[str, DimValue]:
        """The value of every symbol, as bound by the fields (empty when contracts are off)."""
        return dict(self._dims)


def _unwrap(error: ValidationError) -> Exception:
    """A BatchContractError if the batch's contract is the whole failure, else ``error``."""
    details = error.errors()
    if len(details) == 1 and not details[0].get("loc"):
        inner = details[0].get("ctx", {}).get("error")
        if isinstance(inner, ContractError):
            out = BatchContractError.from_exception_data(
                error.title,
                [{"type": "value_error", "loc": (), "input": None, "ctx": {"error": inner}}],
                hide_input=True,
            )
            out.function = inner.function
            out.violations = inner.violations
            return out
    return error

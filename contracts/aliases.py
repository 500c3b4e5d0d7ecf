"""Short spec aliases for annotations: ``F32["batch obs_dim"]`` is a float32 tensor spec.

    from contracts import F32, I64, Bool, contract

    @contract
    def get_value(features: F32["batch obs_dim"], blueprint_indices: I64["batch num_slots"],
                  done: Bool["batch"] | None = None) -> F32["batch"]: ...

An alias subscripted with a string gives ``Annotated[Tensor, spec]``: dims separated by spaces
(an expression without spaces, such as ``24+30*n``, is one dim) or by commas (then spaces are
free: ``"batch, 24 + 30*num_slots"``), optionally followed by ``@device``, ``in [lo, hi]`` and
``| None``: ``I64["batch num_slots in [-1, 12]"]``.

Type checkers see every alias as ``torch.Tensor``: mypy through the plugin
``contracts.mypy_plugin`` (``plugins = ["contracts.mypy_plugin"]`` in its config); checkers
without plugins accept the equivalent ``Annotated[Tensor, "float32[batch, obs_dim]"]``.

Linters read the string as a forward reference, as they do jaxtyping's: ignore ruff/flake8's
F722 (syntax error in forward annotation). A one-dim string that is a bare name would be read
as an undefined name by both mypy and the linter: write it ``F32[" batch,"]`` (the leading
space and the trailing comma are ignored here).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from torch import Tensor

from contracts.spec import TensorSpec

__all__ = [
    "BF16",
    "F16",
    "F32",
    "F64",
    "I8",
    "I16",
    "I32",
    "I64",
    "U8",
    "Bool",
    "Complex",
    "Float",
    "Int",
    "Shaped",
    "TensorAlias",
]

# Where the dims end: a device, a range or "| None".
_SUFFIX = re.compile(r"@|\|\s*None\s*$|\bin\s*\[")


class TensorAlias:
    """``Alias["dims ..."]`` gives ``Annotated[Tensor, TensorSpec]`` for one dtype (or family)."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: str) -> None:
        self.name = name
        self.dtype = dtype

    def spec_text(self, dims: str) -> str:
        """The spec string ``dims`` stands for: ``F32.spec_text("b n")`` is ``float32[b, n]``."""
        if not isinstance(dims, str):
            raise TypeError(
                f'{self.name}[...] takes one string of dims, such as {self.name}["batch n"]; '
                f"got {type(dims).__name__}"
            )
        m = _SUFFIX.search(dims)
        head, suffix = (dims[: m.start()], dims[m.start() :]) if m else (dims, "")
        head = head.strip().removesuffix(",")  # F32["batch,"]: one dim, see the module doc
        if "," not in head:
            head = ", ".join(head.split())
        return f"{self.dtype}[{head.strip()}]{' ' if suffix else ''}{suffix.strip()}"

    def __getitem__(self, dims: str) -> Any:
        # An invalid spec fails here, at the annotation, with pydantic's ValidationError.
        return Annotated[Tensor, TensorSpec.parse(self.spec_text(dims))]

    def __repr__(self) -> str:
        return f"contracts.{self.name}"


F16: Final = TensorAlias("F16", "float16")
BF16: Final = TensorAlias("BF16", "bfloat16")
F32: Final = TensorAlias("F32", "float32")
F64: Final = TensorAlias("F64", "float64")
I8: Final = TensorAlias("I8", "int8")
I16: Final = TensorAlias("I16", "int16")
I32: Final = TensorAlias("I32", "int32")
I64: Final = TensorAlias("I64", "int64")
U8: Final = TensorAlias("U8", "uint8")
Bool: Final = TensorAlias("Bool", "bool")
#: Any floating dtype.
Float: Final = TensorAlias("Float", "float")
#: Any integer dtype (signed or not, not bool).
Int: Final = TensorAlias("Int", "integer")
Complex: Final = TensorAlias("Complex", "complex")
#: Any dtype: only the shape is checked.
Shaped: Final = TensorAlias("Shaped", "any")

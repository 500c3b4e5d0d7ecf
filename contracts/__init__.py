"""Runtime tensor contracts: shapes, dtypes, devices and ranges checked at call boundaries.

    from contracts import contract
    from contracts import phase4 as P

    @contract(features=P.FEATURES_ROLLOUT, blueprint_indices=P.BLUEPRINT_INDICES_ROLLOUT,
              masks=P.MASKS_ROLLOUT, hidden=P.HIDDEN_OR_NONE, bind=P.BIND_FROM_SELF,
              returns="float32[batch]")
    def get_value(self, features, blueprint_indices, masks, hidden=None): ...

or with the specs in the annotations::

    @contract
    def get_value(features: F32["batch obs_dim"], blueprint_indices: I64["batch num_slots"]
                  ) -> F32["batch"]: ...

The whole API: :func:`contract` (decorator), :func:`check` (inline), :class:`ContractError`,
:func:`mode` (and ``ESPER_CONTRACTS=off|on|full``), :class:`TensorBatch` with
:class:`TensorField` (batch models), the annotation aliases (:data:`F32`, :data:`I64`,
:data:`Bool`, ...), and the spec models :class:`TensorSpec`, :class:`DictSpec`,
:class:`TupleSpec`, :class:`ListSpec` with :func:`spec` to build one from a spec-like. The
string grammar is in ``contracts.spec``, dimension expressions in ``contracts.dims``, test
helpers in ``contracts.testing``; the Phase 4 catalogue is ``contracts.phase4``.
"""

from contracts import _requires_torch  # noqa: F401  (first: without torch, one line naming the extra)
from contracts.aliases import (
    BF16,
    F16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    Bool,
    Complex,
    Float,
    Int,
    Shaped,
)
from contracts.batch import TensorBatch, TensorField
from contracts.decorator import check, contract
from contracts.errors import ContractError
from contracts.spec import DictSpec, ListSpec, Spec, SpecLike, TensorSpec, TupleSpec, spec
from contracts.switch import mode

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
    "ContractError",
    "DictSpec",
    "Float",
    "Int",
    "ListSpec",
    "Shaped",
    "Spec",
    "SpecLike",
    "TensorBatch",
    "TensorField",
    "TensorSpec",
    "TupleSpec",
    "check",
    "contract",
    "mode",
    "spec",
]

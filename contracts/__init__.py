"""Runtime tensor contracts: shapes, dtypes, devices and ranges checked at call boundaries.

    from contracts import contract
    from contracts import phase4 as P

    @contract(features=P.FEATURES_ROLLOUT, blueprint_indices=P.BLUEPRINT_INDICES_ROLLOUT,
              masks=P.MASKS_ROLLOUT, hidden=P.HIDDEN_OR_NONE, bind=P.BIND_FROM_SELF,
              returns="float32[batch]")
    def get_value(self, features, blueprint_indices, masks, hidden=None): ...

The whole API: :func:`contract` (decorator), :func:`check` (inline), :class:`ContractError`,
:func:`mode` (and ``ESPER_CONTRACTS=off|on|full``), :class:`TensorBatch` with
:class:`TensorField` (batch models), and the spec models :class:`TensorSpec`,
:class:`DictSpec`, :class:`TupleSpec` with :func:`spec` to build one from a spec-like. The
string grammar is in ``contracts.spec``; the Phase 4 catalogue is ``contracts.phase4``.
"""

from contracts import _requires_torch  # noqa: F401  (first: without torch, one line naming the extra)
from contracts.batch import TensorBatch, TensorField
from contracts.decorator import check, contract
from contracts.errors import ContractError
from contracts.spec import DictSpec, Spec, SpecLike, TensorSpec, TupleSpec, spec
from contracts.switch import mode

__all__ = [
    "ContractError",
    "DictSpec",
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

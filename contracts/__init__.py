"""Runtime tensor contracts: shapes, dtypes, devices and ranges checked at call boundaries.

    from contracts import contract

    @contract(features="float32[batch, obs_dim]", blueprint_indices="int64[batch, num_slots]",
              returns="float32[batch]", fixed={"obs_dim": 114})
    def value(features, blueprint_indices): ...

See ``contracts.spec`` for the spec grammar and ``contracts.phase4`` for the Phase 4 catalogue.
"""

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

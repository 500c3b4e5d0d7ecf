"""Every kind of violation, with its exact message; all of one call reported together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import torch

from contracts import ContractError, contract, mode

F32 = torch.float32
I64 = torch.int64


def _bool(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, dtype=torch.bool)


@contract(
    features="float32[batch, 114]",
    blueprint_indices="int64[batch, num_slots] in [-1, 12]",
    masks="dict[str, bool[batch, *]]",
    returns="float32[batch]",
)
def get_action(features: Any, blueprint_indices: Any, masks: Any) -> Any:
    return features[:, 0]


GOOD = (torch.zeros(32, 114), torch.zeros(32, 3, dtype=I64), {"op": _bool(32, 6)})


def _message(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ContractError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_valid_call_passes() -> None:
    assert get_action(*GOOD).shape == (32,)


def test_wrong_dtype() -> None:
    msg = _message(get_action, GOOD[0], GOOD[1].float(), GOOD[2])
    assert msg == (
        "get_action: blueprint_indices: expected int64[batch, num_slots], got float32[32, 3]@cpu"
    )


def test_symbol_mismatch_says_where_it_was_bound() -> None:
    msg = _message(get_action, GOOD[0], GOOD[1], {"op": _bool(16, 6)})
    assert msg == 'get_action: masks["op"].shape[0]=16 but batch=32 (bound by features.shape[0])'


def test_non_tensor_where_a_tensor_goes_is_a_contract_error_not_attribute_error() -> None:
    msg = _message(get_action, GOOD[0], {"op": GOOD[1]}, GOOD[2])
    assert msg == "get_action: blueprint_indices: expected int64[batch, num_slots], got dict"
    msg = _message(get_action, GOOD[0], [1, 2], GOOD[2])
    assert msg.endswith("got list")


def test_none_where_not_optional() -> None:
    msg = _message(get_action, None, GOOD[1], GOOD[2])
    assert msg == "get_action: features: expected float32[batch, 114], got None"


def test_wrong_rank_and_literal_dim() -> None:
    msg = _message(get_action, torch.zeros(32, 100), GOOD[1], GOOD[2])
    assert msg == "get_action: features: expected float32[batch, 114], got float32[32, 100]@cpu"
    msg = _message(get_action, torch.zeros(32), GOOD[1], GOOD[2])
    assert msg == "get_action: features: expected float32[batch, 114], got float32[32]@cpu"


def test_positional_mix_up_reports_every_violation_one_per_line() -> None:
    masks_tensor = _bool(32, 6)
    msg = _message(get_action, GOOD[0], masks_tensor, GOOD[1])
    assert msg.splitlines() == [
        "get_action: blueprint_indices: expected int64[batch, num_slots], got bool[32, 6]@cpu",
        "get_action: masks: expected dict[str, bool[batch, *]], got int64[32, 3]@cpu",
    ]


def test_error_is_type_and_value_error_with_violations() -> None:
    with pytest.raises(TypeError):
        get_action(GOOD[0], None, GOOD[2])
    with pytest.raises(ValueError) as info:
        get_action(GOOD[0], None, GOOD[2])
    err = info.value
    assert isinstance(err, ContractError)
    assert err.function == "get_action"
    assert err.violations == (
        "get_action: blueprint_indices: expected int64[batch, num_slots], got None",
    )


def test_return_value_is_checked() -> None:
    @contract(x="float32[batch, n]", returns="float32[batch]")
    def bad_return(x: torch.Tensor) -> torch.Tensor:
        return x

    msg = _message(bad_return, torch.zeros(4, 3))
    assert msg == "bad_return: return: expected float32[batch], got float32[4, 3]@cpu"

    @contract(x="float32[batch, n]", returns="float32[n]")
    def wrong_symbol(x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]

    msg = _message(wrong_symbol, torch.zeros(4, 3))
    assert msg == "wrong_symbol: return.shape[0]=4 but n=3 (bound by x.shape[1])"


def test_variadic_mismatch() -> None:
    @contract(x="float32[*lead, 114]", idx="int64[*lead, 3]")
    def f(x: torch.Tensor, idx: torch.Tensor) -> None:
        return None

    f(torch.zeros(4, 5, 114), torch.zeros(4, 5, 3, dtype=I64))
    msg = _message(f, torch.zeros(4, 5, 114), torch.zeros(4, 3, dtype=I64))
    assert msg == "f: idx.shape[:-1]=(4,) but lead=(4, 5) (bound by x.shape[:-1])"


def test_dict_problems() -> None:
    @contract(masks={"op": "bool[b, 6]", "slot": "bool[b, 3]"})
    def f(masks: dict[str, torch.Tensor]) -> None:
        return None

    assert _message(f, {"op": _bool(2, 6)}) == "f: masks: missing key(s) 'slot'"
    msg = _message(f, {"op": _bool(2, 6), "slot": _bool(2, 3), "slots": _bool(2, 3)})
    assert msg == "f: masks: unexpected key(s) 'slots' (expected 'op', 'slot')"
    msg = _message(f, _bool(2, 6))
    assert msg == ("f: masks: expected {'op': bool[b, 6], 'slot': bool[b, 3]}, got bool[2, 6]@cpu")
    msg = _message(f, {"op": _bool(2, 6), "slot": _bool(3, 3)})
    assert msg == 'f: masks["slot"].shape[0]=3 but b=2 (bound by masks["op"].shape[0])'


def test_tuple_problems() -> None:
    @contract(hidden="tuple[float32[l, b, h], float32[l, b, h]]")
    def f(hidden: tuple[torch.Tensor, torch.Tensor]) -> None:
        return None

    h = torch.zeros(1, 4, 8)
    assert _message(f, [h, h]) == (
        "f: hidden: expected tuple[float32[l, b, h], float32[l, b, h]], got list"
    )
    assert _message(f, (h, h, h)) == "f: hidden: expected a tuple of 2, got a tuple of 3"
    assert _message(f, (h, torch.zeros(1, 4, 9))) == (
        "f: hidden[1].shape[2]=9 but h=8 (bound by hidden[0].shape[2])"
    )


def test_named_tuple_items_are_named_by_field() -> None:
    class Result(NamedTuple):
        actions: torch.Tensor
        value: torch.Tensor

    @contract(x="float32[b]", returns=("int64[b]", "float32[b]"))
    def act(x: torch.Tensor) -> Result:
        return Result(torch.zeros(3, dtype=I64), torch.zeros(4))

    assert _message(act, torch.zeros(3)) == (
        "act: return.value.shape[0]=4 but b=3 (bound by x.shape[0])"
    )


def test_fixed_and_instance_bound_symbols() -> None:
    class Policy:
        num_slots = 3

        @contract(idx="int64[batch, num_slots]", x="float32[batch, obs_dim]",
                  bind={"num_slots": "self.num_slots"}, fixed={"obs_dim": 114})  # fmt: skip
        def act(self, idx: torch.Tensor, x: torch.Tensor) -> None:
            return None

    p = Policy()
    p.act(torch.zeros(2, 3, dtype=I64), torch.zeros(2, 114))
    msg = _message(p.act, torch.zeros(2, 4, dtype=I64), torch.zeros(2, 100))
    assert msg.splitlines() == [
        "act: idx.shape[1]=4 but num_slots=3 (bound by self.num_slots)",
        "act: x.shape[1]=100 but obs_dim=114 (fixed)",
    ]
    p.num_slots = 4  # read on every call
    p.act(torch.zeros(2, 4, dtype=I64), torch.zeros(2, 114))


def test_binding_failures() -> None:
    class Thing:
        pass

    @contract(x="float32[n]", bind={"n": "self.size"})
    def method(self: Any, x: torch.Tensor) -> None:
        return None

    assert _message(method, Thing(), torch.zeros(3)) == (
        "method: cannot bind n: self.size does not exist"
    )
    thing = Thing()
    thing.size = "3"  # type: ignore[attr-defined]
    assert _message(method, thing, torch.zeros(3)) == (
        "method: cannot bind n: self.size is a str, not an int"
    )


def test_devices_exact_and_same() -> None:
    @contract(x="float32[n]@cpu", y="float32[n]@same", z="float32[n]@same")
    def f(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
        return None

    cpu, meta = torch.zeros(3), torch.zeros(3, device="meta")
    f(cpu, meta, meta)
    assert _message(f, meta, cpu, cpu) == ("f: x: expected float32[n]@cpu, got float32[3]@meta")
    assert _message(f, cpu, cpu, meta) == (
        "f: z.device=meta but the other tensors are on cpu (bound by y.device)"
    )


def test_ranges_only_in_full_mode_with_observed_min_max() -> None:
    idx = torch.tensor([[-3, 0, 14]], dtype=I64)
    features = torch.zeros(1, 114)
    get_action(features, idx, {"op": _bool(1, 6)})  # "on": no value reads
    with mode("full"):
        msg = _message(get_action, features, idx, {"op": _bool(1, 6)})
    assert msg == "get_action: blueprint_indices: values in [-3, 14] outside [-1, 12]"

    @contract(x="float32[n] in [0, 1]")
    def prob(x: torch.Tensor) -> None:
        return None

    with mode("full"):
        prob(torch.tensor([0.0, 1.0]))
        prob(torch.zeros(0))
        assert _message(prob, torch.tensor([0.5, float("nan")])) == (
            "prob: x: contains NaN, expected values in [0, 1]"
        )


def test_tensor_values_are_never_printed() -> None:
    features = torch.full((32, 114), 98765.0)
    idx = torch.full((32, 4), 43210.0)
    msg = _message(get_action, features, idx, {"op": _bool(16, 6)})
    assert "98765" not in msg and "43210" not in msg
    assert len(msg.splitlines()) == 2


def test_definition_errors() -> None:
    def f(x: torch.Tensor, *rest: Any, **kw: Any) -> None:
        return None

    with pytest.raises(TypeError, match="no specs given, it would check nothing"):
        contract()(f)
    with pytest.raises(TypeError, match="no specs given"):
        contract(f)  # bare @contract reads the annotations: none of f's has a spec
    with pytest.raises(TypeError, match="expected a function to decorate, got str"):
        contract("float32[n]")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="no parameter named 'y'"):
        contract(y="float32[n]")(f)
    with pytest.raises(TypeError, match=r"cannot put a spec on \*rest"):
        contract(rest="float32[n]")(f)
    with pytest.raises(TypeError, match=r"is not a path like 'self\.num_slots'"):
        contract(x="float32[n]", bind={"n": "x"})(f)
    with pytest.raises(TypeError, match="no parameter 'self'"):
        contract(x="float32[n]", bind={"n": "self.n"})(f)
    with pytest.raises(TypeError, match="fixed n='3' is not an int"):
        contract(x="float32[n]", fixed={"n": "3"})(f)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="fixed lead must be a tuple of ints"):
        contract(x="float32[*lead]", fixed={"lead": 3})(f)
    with pytest.raises(ValueError, match="invalid spec"):
        contract(x="float32[n")(f)


def test_returns_on_an_async_or_generator_function_is_refused_at_decoration() -> None:
    async def coro(x: torch.Tensor) -> torch.Tensor:
        return x

    def gen(x: torch.Tensor) -> Any:
        yield x

    for fn in (coro, gen):
        with pytest.raises(TypeError, match="`returns` cannot check an async or generator"):
            contract(x="float32[n]", returns="float32[n]")(fn)
    assert contract(x="float32[n]")(gen) is not None  # argument specs alone still work

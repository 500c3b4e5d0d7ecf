"""The decorator's behaviour: signatures, the switch, fallbacks, ``check()``, optional args."""

from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest
import torch

from contracts import ContractError, check, contract, mode, switch

I64 = torch.int64


def _plain(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Docstring kept."""
    return x


SPECS: dict[str, Any] = {"x": "float32[n]", "y": "float32[n] | None", "returns": "float32[n]"}


def test_wrapper_keeps_name_doc_signature_and_wrapped() -> None:
    checked = contract(**SPECS)(_plain)
    assert checked is not _plain
    assert checked.__name__ == "_plain" and checked.__doc__ == "Docstring kept."
    assert checked.__wrapped__ is _plain  # type: ignore[attr-defined]
    assert inspect.signature(checked) == inspect.signature(_plain)


def test_every_parameter_kind_is_passed_through() -> None:
    default = [1]

    @contract(a="float32[n]", b="float32[n]", c="int64[n]")
    def f(
        a: torch.Tensor,
        /,
        b: torch.Tensor,
        *rest: Any,
        c: torch.Tensor,
        d: Any = default,
        **kw: Any,
    ) -> tuple[Any, ...]:
        return a, b, rest, c, d, kw

    a, b, c = torch.zeros(2), torch.ones(2), torch.zeros(2, dtype=I64)
    out = f(a, b, 7, 8, c=c, e=9)
    assert out[0] is a and out[1] is b and out[2] == (7, 8) and out[3] is c
    assert out[4] is default and out[5] == {"e": 9}
    assert f(a, b=b, c=c)[4] is default
    # The thorough path (a Parameter is not on the fast path; full mode) makes the same call.
    param = torch.nn.Parameter(torch.zeros(2))
    for ctx in (mode("on"), mode("full")):
        with ctx:
            slow = f(param, b, 7, 8, c=c, e=9)
        assert slow[0] is param and slow[2] == (7, 8) and slow[3] is c
        assert slow[4] is default and slow[5] == {"e": 9}
    with pytest.raises(ContractError, match="c: expected int64"):
        f(a, b, c=b)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'c'"):
        f(a, b)  # type: ignore[call-arg]  # Python's own binding errors stay as they are


def test_parameters_may_shadow_builtins() -> None:
    class Obj:
        n = 2

    @contract(type="float32[n]", len="dict[str, float32[n]]", tuple="tuple[float32[n]]",
              bind={"n": "int.n"})  # fmt: skip
    def f(type: Any, len: Any, tuple: Any, int: Any) -> str:
        return "ok"

    t = torch.zeros(2)
    assert f(t, {"a": t}, (t,), Obj()) == "ok"
    with pytest.raises(ContractError, match="type: expected float32"):
        f(None, {"a": t}, (t,), Obj())


def test_optional_argument_none_or_checked() -> None:
    checked = contract(**SPECS)(_plain)
    x = torch.zeros(3)
    assert checked(x) is x and checked(x, None) is x and checked(x, torch.ones(3)) is x
    with pytest.raises(ContractError, match=r"y.shape\[0\]=4 but n=3 \(bound by x.shape\[0\]\)"):
        checked(x, torch.ones(4))


def test_optional_symbols_bind_when_present() -> None:
    @contract(h="float32[b, k] | None", x="float32[b, k]")
    def f(h: torch.Tensor | None, x: torch.Tensor) -> None:
        return None

    f(None, torch.zeros(2, 3))
    f(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ContractError, match=r"x.shape\[1\]=4 but k=3 \(bound by h.shape\[1\]\)"):
        f(torch.zeros(2, 3), torch.zeros(2, 4))


def test_accepted_outside_the_fast_path_subclasses_mappings_namedtuples() -> None:
    class HC(NamedTuple):
        h: torch.Tensor
        c: torch.Tensor

    @contract(
        p="float32[n]",
        masks="dict[str, bool[n]]",
        hidden="tuple[float32[n], float32[n]]",
    )
    def f(p: torch.Tensor, masks: Any, hidden: Any) -> str:
        return "called"

    param = torch.nn.Parameter(torch.zeros(3))
    masks = MappingProxyType({"op": torch.ones(3, dtype=torch.bool)})
    t = torch.zeros(3)
    assert f(param, masks, HC(t, t)) == "called"
    with pytest.raises(ContractError, match='masks\\["op"\\]: expected bool\\[n\\]'):
        f(param, MappingProxyType({"op": t}), HC(t, t))


def test_same_symbol_twice_in_one_tensor() -> None:
    @contract(m="float32[n, n]")
    def square(m: torch.Tensor) -> None:
        return None

    square(torch.zeros(3, 3))
    with pytest.raises(ContractError, match=r"m.shape\[1\]=4 but n=3 \(bound by m.shape\[0\]\)"):
        square(torch.zeros(3, 4))


def test_homogeneous_dict_binds_from_its_first_value() -> None:
    @contract(masks="dict[str, bool[b, *]]", x="float32[b]")
    def f(masks: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        return None

    f({}, torch.zeros(5))  # nothing bound by an empty dict
    f({"a": torch.ones(5, 2, dtype=torch.bool)}, torch.zeros(5))
    with pytest.raises(ContractError, match=r"x.shape\[0\]=4 but b=5"):
        f({"a": torch.ones(5, 2, dtype=torch.bool)}, torch.zeros(4))


# ------------------------------------------------------------------------------- switch


def test_off_returns_the_original_function() -> None:
    with mode("off"):
        assert contract(**SPECS)(_plain) is _plain


def test_env_var_is_read_at_decoration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(switch, "_COMPILED_OUT", [])  # keep this test's record to itself
    monkeypatch.setenv("ESPER_CONTRACTS", "off")
    assert contract(**SPECS)(_plain) is _plain
    monkeypatch.setenv("ESPER_CONTRACTS", "full")
    full = contract(x="float32[n] in [0, 1]")(_plain)
    monkeypatch.setenv("ESPER_CONTRACTS", "on")
    on = contract(x="float32[n] in [0, 1]")(_plain)
    monkeypatch.delenv("ESPER_CONTRACTS")
    x = torch.full((2,), 5.0)
    assert on(x) is x
    with pytest.raises(ContractError, match=r"values in \[5, 5\] outside \[0, 1\]"):
        full(x)
    monkeypatch.setenv("ESPER_CONTRACTS", "sometimes")
    with pytest.raises(ValueError, match="ESPER_CONTRACTS='sometimes': use 'off', 'on' or 'full'"):
        contract(**SPECS)(_plain)


def test_mode_block_overrides_checked_functions_per_call() -> None:
    checked = contract(x="float32[n] in [0, 1]")(_plain)
    bad_dtype = torch.zeros(2, dtype=I64)
    with mode("off"):
        assert checked(bad_dtype) is bad_dtype
    with pytest.raises(ContractError):
        checked(bad_dtype)
    with mode("full"), pytest.raises(ContractError, match="outside"):
        checked(torch.full((2,), 2.0))
    with mode("on"):
        with mode("off"):
            pass
        with pytest.raises(ContractError):  # the outer block is restored
            checked(bad_dtype)
    with pytest.raises(ValueError, match="use 'off', 'on' or 'full'"), mode("loud"):  # type: ignore[arg-type]
        pass


# -------------------------------------------------------------------------------- check()


def test_check_shares_symbols_and_reports_all() -> None:
    obs, idx = torch.zeros(8, 114), torch.zeros(8, 3, dtype=I64)
    check("rollout", obs=(obs, "float32[b, 114]"), idx=(idx, "int64[b, 3]"))
    with pytest.raises(ContractError) as info:
        check(
            "rollout",
            obs=(obs, "float32[b, 114]"),
            idx=(idx[:4], "int64[b, num_slots]"),
            masks=({"op": obs}, {"op": "bool[b, 6]"}),
            bind={"num_slots": 4},
        )
    assert str(info.value).splitlines() == [
        "rollout: idx.shape[0]=4 but b=8 (bound by obs.shape[0])",
        "rollout: idx.shape[1]=3 but num_slots=4 (given)",
        'rollout: masks["op"]: expected bool[b, 6], got float32[8, 114]@cpu',
    ]
    with pytest.raises(TypeError, match="must be a \\(value, spec\\) pair"):
        check("rollout", obs=obs)  # type: ignore[arg-type]
    with mode("off"):
        check("rollout", obs=(None, "float32[b]"))

"""Dimension expressions and derived symbols: parsing, checking, solving, their errors."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import F32, I64, ContractError, check, contract, spec
from contracts import phase4 as P
from contracts.checker import Checker
from contracts.dims import parse_derived, parse_dim, parse_expr

SETTINGS = settings(
    max_examples=int(os.environ.get("CONTRACTS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _ints(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape, dtype=torch.int64)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("24+30*num_slots", "24 + 30*num_slots"),
        ("(n - 1)//2", "(n - 1)//2"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a*(b*c)", "a*(b*c)"),
        ("2*3 + n", "6 + n"),
        ("((n))", "n"),
        ("4*3", 12),
    ],
)
def test_expressions_parse_to_a_canonical_form(text: str, canonical: str | int) -> None:
    assert parse_dim(text) == canonical
    if isinstance(canonical, str) and not canonical.isidentifier():
        assert str(spec(f"float32[{text}]")) == f"float32[{canonical}]"


@SETTINGS
@given(
    st.recursive(
        st.one_of(st.integers(0, 9).map(str), st.sampled_from(["a", "b", "c"])),
        lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "//"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        max_leaves=8,
    ),
    st.fixed_dictionaries({n: st.integers(1, 9) for n in "abc"}),
)
def test_evaluation_and_canonical_text_agree_with_python(text: str, env: dict[str, int]) -> None:
    try:
        want = eval(text, {}, dict(env))  # the expression is Python integer arithmetic
    except ZeroDivisionError:
        return
    try:
        e = parse_expr(text)
    except ValueError as err:
        assert "divides by zero" in str(err) or "division" in str(err)
        return
    assert e.evaluate(env) == want
    assert parse_expr(str(e)).evaluate(env) == want  # the printed form means the same


@SETTINGS
@given(st.integers(-5, 5), st.integers(-20, 20), st.integers(0, 40), st.integers(1, 3))
def test_solving_a_linear_unknown(a: int, b: int, target: int, k: int) -> None:
    term = f"{abs(a)}*k*x"
    linear = f"{term} + {b}" if a >= 0 else f"{max(b, 0)} - {term}"
    if a < 0 and b < 0:
        linear = f"0 - {term} - {-b}"
    elif a >= 0 and b < 0:
        linear = f"{term} - {-b}"
    e = parse_expr(linear)
    if a == 0:
        assert not e.solvable("x")
        return
    assert e.solvable("x")
    x = e.solve("x", {"k": k}, target)
    exact = [v for v in range(0, 200) if b + a * k * v == target]
    assert x == (exact[0] if exact else None)


def test_invalid_expressions_fail_at_definition() -> None:
    for text, fragment in [
        ("float32[a +]", "expression ends after an operator"),
        ("float32[a + _]", "'_' (any size) cannot be part of an expression"),
        ("float32[(a]", "missing ')'"),
        ("float32[a // 0]", "divides by zero"),
        ("float32[2 - 5]", "dimension -3 is negative"),
        ("float32[a ** 2]", "expected a number, a symbol or '(' but got '*'"),
    ]:
        with pytest.raises(ValidationError) as info:
            spec(text)
        assert fragment in str(info.value), (text, str(info.value))


def test_the_issue_message_for_a_derived_observation_width() -> None:
    @contract(derived=P.DERIVED)
    def get_value(
        features: F32["batch obs_dim"], blueprint_indices: I64["batch num_slots"]
    ) -> None:
        return None

    idx = _ints(4, 3)
    get_value(torch.zeros(4, 114), idx)
    get_value(torch.zeros(4, 54), _ints(4, 1))
    with pytest.raises(ContractError) as info:
        get_value(torch.zeros(4, 110), idx)
    assert str(info.value) == (
        "get_value: features.shape[1]=110 but obs_dim = 24 + 30*num_slots = 114 "
        "(num_slots=3, bound by blueprint_indices.shape[1])"
    )


def test_inline_expressions_bound_later_fixed_or_from_self() -> None:
    class Net:
        num_slots = 3
        embed = 4

    @contract(
        emb="float32[b, num_slots*embed]",
        idx="int64[b, num_slots]",
        bind={"embed": "self.embed"},
        returns="float32[b, num_slots*embed + 1]",
    )
    def embed(self: Any, emb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb, emb[:, :1]], 1)

    net = Net()
    assert embed(net, torch.zeros(2, 12), _ints(2, 3)).shape == (2, 13)
    with pytest.raises(ContractError) as info:
        embed(net, torch.zeros(2, 12), _ints(2, 2))
    assert info.value.violations == (
        "embed: emb.shape[1]=12 but num_slots*embed = 8 "
        "(embed=4, bound by self.embed; num_slots=2, bound by idx.shape[1])",
    )


def test_an_unknown_symbol_is_solved_from_the_dimension() -> None:
    @contract(features="float32[b, 24 + 30*n]", returns="float32[n]")
    def per_slot(features: torch.Tensor) -> torch.Tensor:
        return torch.zeros((features.shape[1] - 24) // 30)

    assert per_slot(torch.zeros(2, 114)).shape == (3,)
    with pytest.raises(ContractError) as info:
        per_slot(torch.zeros(2, 110))
    assert str(info.value) == (
        "per_slot: features.shape[1]=110 but 24 + 30*n has no whole-number solution for n"
    )


def test_derived_symbol_bound_only_by_the_relation_checks_the_return_value() -> None:
    @contract(
        idx="int64[b, num_slots]",
        returns="float32[b, obs_dim]",
        derived={"obs_dim": P.OBS_DIM_EXPR},
    )
    def zeros(idx: torch.Tensor, width: int) -> torch.Tensor:
        return torch.zeros(idx.shape[0], width)

    assert zeros(_ints(2, 3), 114).shape == (2, 114)
    with pytest.raises(ContractError, match=r"return.shape\[1\]=113 but obs_dim=114 \(obs_dim = "):
        zeros(_ints(2, 3), 113)


def test_expressions_inside_optional_and_looped_values() -> None:
    @contract(x="float32[n]", masks="dict[str, bool[n + 1]]", extra="float32[2*n] | None")
    def f(
        x: torch.Tensor, masks: dict[str, torch.Tensor], extra: torch.Tensor | None = None
    ) -> int:
        return 1

    masks = {"a": torch.zeros(4, dtype=torch.bool)}
    assert f(torch.zeros(3), masks) == 1
    assert f(torch.zeros(3), masks, torch.zeros(6)) == 1
    with pytest.raises(ContractError, match=r'masks\["b"\].shape\[0\]=3 but n \+ 1 = 4'):
        f(torch.zeros(3), {**masks, "b": torch.zeros(3, dtype=torch.bool)})
    with pytest.raises(ContractError, match=r"extra.shape\[0\]=5 but 2\*n = 6"):
        f(torch.zeros(3), masks, torch.zeros(5))


def test_definition_errors_for_expressions() -> None:
    def f(x: torch.Tensor, y: torch.Tensor) -> None: ...

    with pytest.raises(TypeError, match="nothing binds m, n in the expression m\\*n"):
        contract(x="float32[m*n]")(f)
    with pytest.raises(TypeError, match=r"lead binds several dims \(\*lead\)"):
        contract(x="float32[*lead]", y="float32[lead + 1]")(f)
    with pytest.raises(TypeError, match="derived symbols depend on each other in a cycle"):
        contract(x="float32[a]", derived={"a": "b + 1", "b": "2*a"})(f)
    with pytest.raises(TypeError, match="derived symbol 'x y' is not a name"):
        contract(x="float32[n]", derived={"x y": "n"})(f)
    with pytest.raises(TypeError, match="derived n: invalid dimension expression"):
        contract(x="float32[n]", derived={"n": "m +"})(f)
    assert parse_derived({"a": "b*2", "b": "c + 1"}, "here")[0][0] == "b"  # dependencies first


def test_check_takes_derived_too() -> None:
    check("ok", x=(torch.zeros(3, 5), "float32[n, 2*n - 1]"))
    with pytest.raises(ContractError, match=r"x.shape\[1\]=4 but obs = 2\*n - 1 = 5"):
        check("bad", x=(torch.zeros(3, 4), "float32[n, obs]"), derived={"obs": "2*n - 1"})


@SETTINGS
@given(st.integers(0, 4), st.integers(0, 130), st.integers(1, 3), st.booleans())
def test_fast_path_and_checker_agree_on_expressions(
    slots: int, width: int, batch: int, with_done: bool
) -> None:
    @contract(derived=P.DERIVED, done="bool[batch + 1] | None")
    def f(
        features: F32["batch obs_dim"],
        idx: I64["batch num_slots"],
        done: torch.Tensor | None = None,
    ) -> F32["batch 2*num_slots"]:
        return torch.zeros(features.shape[0], 2 * slots)

    args: list[Any] = [torch.zeros(batch, width), _ints(batch, slots)]
    if with_done:
        args.append(torch.zeros(batch + 1, dtype=torch.bool))
    checker = Checker(derived=parse_derived(P.DERIVED, "t"))
    for name, value, s in zip(
        ("features", "idx", "done"),
        args,
        (spec("float32[batch, obs_dim]"), spec("int64[batch, num_slots]"), spec("bool[batch + 1]")),
        strict=False,
    ):
        checker.check(name, value, s)
    checker.resolve()
    try:
        f(*args)
    except ContractError as e:
        assert [v.removeprefix("f: ") for v in e.violations] == checker.violations
    else:
        assert not checker.violations and width == 24 + 30 * slots


def test_a_derived_symbol_bound_from_self_is_checked_against_its_relation() -> None:
    class Policy:
        num_slots = 3

        def __init__(self, state_dim: int) -> None:
            self.state_dim = state_dim

        @contract(
            features="float32[batch, obs_dim]",
            bind={"num_slots": "self.num_slots", "obs_dim": "self.state_dim"},
            derived=P.DERIVED,
        )
        def act(self, features: torch.Tensor) -> int:
            return 1

    assert Policy(114).act(torch.zeros(2, 114)) == 1
    with pytest.raises(ContractError) as info:
        Policy(110).act(torch.zeros(2, 110))
    assert str(info.value) == (
        "act: obs_dim=110 (bound by self.state_dim) but obs_dim = 24 + 30*num_slots = 114 "
        "(num_slots=3, bound by self.num_slots)"
    )


@SETTINGS
@given(
    st.sampled_from(["24 + 30*n", "2*n - 1", "n*k + 1", "(n + 1)*2", "n//2", "k - n"]),
    st.integers(0, 130),
    st.integers(1, 4),
)
def test_fast_path_solves_like_the_checker(expr: str, width: int, k: int) -> None:
    @contract(k_of="float32[k]", x=f"float32[b, {expr}]", returns="float32[n]")
    def f(k_of: torch.Tensor, x: torch.Tensor, n: int) -> torch.Tensor:
        return torch.zeros(n)

    checker = Checker()
    checker.check("k_of", torch.zeros(k), spec("float32[k]"))
    checker.check("x", torch.zeros(2, width), spec(f"float32[b, {expr}]"))
    checker.resolve()
    solved = checker.symbols.get("n")
    if "//" not in expr:
        assert "% _ct_a" in f.__contract_source__  # type: ignore[attr-defined]  # fast path solves
    # n//2 cannot be solved: the return value binds n and the relation is checked then.
    n = solved if isinstance(solved, int) else 2 * width
    checker.check("return", torch.zeros(n), spec("float32[n]"))
    checker.resolve()
    try:
        f(torch.zeros(k), torch.zeros(2, width), n)
    except ContractError as e:
        assert [v.removeprefix("f: ") for v in e.violations] == checker.violations
        assert checker.violations
    else:
        assert not checker.violations
    if isinstance(solved, int):  # a return value of another length contradicts the solution
        with pytest.raises(ContractError, match=r"return.shape\[0\]="):
            f(torch.zeros(k), torch.zeros(2, width), solved + 1)

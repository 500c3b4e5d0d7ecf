"""A checked function compiles into one graph with ``fullgraph=True`` and still checks."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing

from contracts import F32, I64, ContractError, contract, mode


@contract(
    features="float32[batch, 114]",
    blueprint_indices="int64[batch, num_slots] in [-1, 12]",
    masks="dict[str, bool[batch, *]]",
    hidden="tuple[float32[layers, batch, h], float32[layers, batch, h]] | None",
    returns="float32[batch]",
)
def score(
    features: torch.Tensor,
    blueprint_indices: torch.Tensor,
    masks: dict[str, torch.Tensor],
    hidden: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    out = features.sum(1) + blueprint_indices.float().sum(1) + masks["op"].float().sum(1)
    if hidden is not None:
        out = out + hidden[0].sum((0, 2))
    return out


def _inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    return (
        torch.randn(batch, 114),
        torch.randint(-1, 13, (batch, 3)),
        {"op": torch.rand(batch, 6) > 0.5},
    )


def test_fullgraph_compiles_to_one_graph_and_valid_input_passes() -> None:
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(score, fullgraph=True, backend=counter)
    args = _inputs(4)
    torch.testing.assert_close(compiled(*args), score(*args))
    assert counter.frame_count == 1  # one graph, no breaks
    hidden = (torch.randn(1, 4, 8), torch.randn(1, 4, 8))
    torch.testing.assert_close(compiled(*args, hidden), score(*args, hidden))
    other = _inputs(7)  # a new batch size: recompiles (dynamic), still valid
    torch.testing.assert_close(compiled(*other), score(*other))


def test_full_mode_compiles_too_and_ranges_are_checked_around_the_graph() -> None:
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    with mode("full"):
        compiled = torch.compile(score, fullgraph=True, backend=counter)
        features, idx, masks = _inputs(4)
        torch.testing.assert_close(compiled(features, idx, masks), score(features, idx, masks))
        # The wrapper runs eagerly around the compiled graph, so values are read there too.
        with pytest.raises(ContractError, match=r"values in \[20, 20\] outside \[-1, 12\]"):
            compiled(features, torch.full((4, 3), 20), masks)
    assert counter.frame_count == 1


def test_a_wrong_call_of_a_compiled_function_raises_contract_error_itself() -> None:
    torch._dynamo.reset()
    features, idx, masks = _inputs(4)
    expected = "score: blueprint_indices: expected int64[batch, num_slots], got float32[4, 3]@cpu"
    for fullgraph in (False, True):
        with pytest.raises(ContractError) as info:
            torch.compile(score, fullgraph=fullgraph, backend="eager")(features, idx.float(), masks)
        assert str(info.value) == expected


@contract(derived={"obs_dim": "24 + 30*num_slots"})
def value_of(
    features: F32["batch obs_dim"], blueprint_indices: I64["batch num_slots"]
) -> F32[" batch,"]:
    return features.sum(1) * blueprint_indices.shape[1]


def test_annotation_specs_and_an_expression_compile_to_one_graph() -> None:
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(value_of, fullgraph=True, backend=counter)
    features, idx, _ = _inputs(4)
    torch.testing.assert_close(compiled(features, idx), value_of(features, idx))
    assert counter.frame_count == 1 and counter.op_count >= 1  # the body, in one graph
    with pytest.raises(ContractError) as info:
        compiled(torch.randn(4, 110), idx)
    assert str(info.value) == (
        "value_of: features.shape[1]=110 but obs_dim = 24 + 30*num_slots = 114 "
        "(num_slots=3, bound by blueprint_indices.shape[1])"
    )


def test_inlined_into_a_larger_compiled_function() -> None:
    """Called from compiled code, the checks are traced: they become the graph's guards and a
    violation stops compilation with dynamo's error carrying our message."""

    def outer(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return value_of(features, idx) * 2

    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(outer, fullgraph=True, backend=counter)
    features, idx, _ = _inputs(4)
    torch.testing.assert_close(compiled(features, idx), outer(features, idx))
    assert counter.frame_count == 1
    with mode("full"):  # the context's mode is read while tracing (one recompile)
        torch.testing.assert_close(compiled(features, idx), outer(features, idx))
    with pytest.raises(Exception, match=r"features.shape\[1\]=110 but obs_dim") as info:
        compiled(torch.randn(4, 110), idx)
    assert not isinstance(info.value, ContractError)  # dynamo's own error (documented)

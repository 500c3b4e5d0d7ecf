"""A checked function compiles into one graph with ``fullgraph=True`` and still checks."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing

from contracts import ContractError, contract, mode


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


def test_full_mode_compiles_too_ranges_are_left_to_eager_calls() -> None:
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    with mode("full"):
        compiled = torch.compile(score, fullgraph=True, backend=counter)
        args = _inputs(4)
        torch.testing.assert_close(compiled(*args), score(*args))
    assert counter.frame_count == 1


def test_violations_still_surface_under_compile() -> None:
    torch._dynamo.reset()
    features, idx, masks = _inputs(4)
    expected = "score: blueprint_indices: expected int64[batch, num_slots], got float32[4, 3]@cpu"
    # Without fullgraph, dynamo falls back to eager for the failing frame: our own error.
    with pytest.raises(ContractError) as info:
        torch.compile(score, backend="eager")(features, idx.float(), masks)
    assert str(info.value) == expected
    # With fullgraph, dynamo reports the error it saw while tracing, our message included.
    with pytest.raises(Exception) as info2:
        torch.compile(score, fullgraph=True, backend="eager")(features, idx.float(), masks)
    assert expected in str(info2.value)

"""``contracts`` is mypy --strict clean, and decorating keeps a function's type for callers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USAGE = """
from collections.abc import Callable
from typing import Annotated, assert_type
import torch
from torch import Tensor
from contracts import TensorBatch, TensorField, check, contract, mode
from contracts import phase4 as P

@contract(x="float32[b, n]", returns="float32[b]", fixed={"n": 3})
def f(x: Tensor, scale: float = 1.0) -> Tensor:
    return x.sum(1) * scale

class Batch(TensorBatch):
    states: Annotated[Tensor, TensorField(P.FEATURES_SEQUENCE)]

g: Callable[[Tensor, float], Tensor] = f
y = assert_type(f(torch.zeros(2, 3), scale=2.0), Tensor)  # not Any: the type survives
with mode("off"):
    check("here", x=(y, "float32[b]"))
b: Batch = Batch(states=torch.zeros(2, 3, 114))
dims: dict[str, int | tuple[int, ...]] = b.dims
"""


@pytest.mark.slow
def test_mypy_strict_on_the_package_and_a_typed_caller(tmp_path: Path) -> None:
    usage = tmp_path / "usage.py"
    usage.write_text(USAGE)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "contracts", str(usage)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""``contracts`` is mypy --strict clean, decorating keeps a function's type for callers, and
with the ``contracts.mypy_plugin`` (pyproject) the aliases are Tensors (``typed_usage.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TYPED_USAGE = Path(__file__).with_name("typed_usage.py")

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
        [sys.executable, "-m", "mypy", "--strict", "contracts", str(usage), str(TYPED_USAGE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_plugin_reads_aliases_as_tensors_and_catches_misuse(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_usage.py"
    wrong.write_text(
        "from contracts import F32\n"
        "def f(x: F32['b n']) -> F32[' b,']:\n"
        "    return x.sum(1)\n"
        "reveal_type(f)\n"
        "f(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(wrong)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout
    assert 'Revealed type is "def (x: torch._tensor.Tensor) -> torch._tensor.Tensor"' in out, out
    assert 'Argument 1 to "f" has incompatible type "int"; expected "Tensor"' in out, out

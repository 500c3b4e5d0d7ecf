"""``bench/gpu_check.sh`` without a GPU: one clear line and exit 0 (CI machines have none)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_skips_with_a_clear_line_without_cuda() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped: no CUDA ("), done.stdout


def test_gpu_check_fails_loudly_when_python_cannot_run() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHON": "/nonexistent/python", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1 and "cannot import torch" in done.stderr

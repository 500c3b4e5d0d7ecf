"""Helpers of the fault suite (and of ``bench/fault_trials.py``): small trees to attack and
the commands run as real processes.

Every command runs with a timeout, so a hang (a FIFO read, a lock never released) fails its
test instead of stalling CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: A network with a target method and a caller whose value comes from the producer.
NET = """\
import torch


class FactoredRecurrentActorCritic:
    def get_action(self, state, hidden=None):
        return state


def rollout(net: FactoredRecurrentActorCritic, signals):
    states, bp = batch_obs_to_features(signals)
    return net.get_action(states)
"""
NET_AFTER = NET.replace(
    "self, state, hidden", "self, state, blueprint_indices: torch.Tensor, hidden"
).replace("get_action(states)", "get_action(states, blueprint_indices=bp)")

#: Seconds any one command may take before the test calls it a hang.
TIMEOUT = 60

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def run_cli(*args: str, cwd: Path, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """``esper-migrate ARGS`` in a fresh interpreter: (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "esper_migrate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(err: str, *needles: str) -> None:
    """The failure is one line naming the cause, never a traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tmp") if ".esper_migrate_cache" not in p.parts)

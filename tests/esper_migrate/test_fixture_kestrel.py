"""The second fixture codebase, kestrel: before/ and after/ are real, runnable code, after/ is
before/ migrated by hand the way ``esper-migrate apply`` must do it, and before/ keeps the
real-world patterns issue 10 asks the engine to handle.

(That apply reproduces after/ byte for byte is asserted by the engine's own tests once it does.)
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KESTREL = Path(__file__).parent / "fixtures" / "kestrel"
BEFORE = KESTREL / "before"
AFTER = KESTREL / "after"
NEW = "blueprint_indices"
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".esper_migrate_cache"}
# The companion under every name before/ gives it: the parameter, the producer's `bp`, and
# `blueprints` (the discarded `_blueprints` that apply puts to use), or a synthesised test value.
_COMPANION_RE = re.compile(r"\b(?:blueprint_indices|bp|blueprints)\b|torch\.randint\(0, 13, \(")


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not _SKIP_PARTS.intersection(p.relative_to(root).parts)
        and p.suffix != ".pyc"
    }


def _tree(rel: str) -> ast.Module:
    return ast.parse((BEFORE / rel).read_text(encoding="utf-8"), filename=rel)


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef]:
    """Every function by qualified name (``Class.method`` or ``function``)."""
    out: dict[str, ast.FunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out[f"{node.name}.{item.name}"] = item
        elif isinstance(node, ast.Module):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out[item.name] = item
    return out


def _params(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in fn.args.args]


@pytest.fixture(scope="module")
def suite_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """before/'s and after/'s own test suites, concurrently, each in a private copy."""
    env = {
        **os.environ,
        "PYTHONPATH": ".",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Tiny suites: torch's thread pool start-up would dominate on shared cores.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    procs = {}
    for name in ("before", "after"):
        root = tmp_path_factory.mktemp("kestrel") / name
        shutil.copytree(KESTREL / name, root, ignore=shutil.ignore_patterns(*_SKIP_PARTS, "*.pyc"))
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        results[name] = (proc.returncode, out)
    return results


@pytest.mark.parametrize("name", ["before", "after"])
def test_own_tests_pass(name: str, suite_runs: dict[str, tuple[int, str]]) -> None:
    returncode, out = suite_runs[name]
    assert returncode == 0, out[-6000:]
    last = out.strip().splitlines()[-1]
    assert re.search(r"\b22 passed\b", last), last
    assert "failed" not in last and "error" not in last and "skipped" not in last


def test_golden_has_the_same_files_and_only_migration_edits() -> None:
    before, after = _files(BEFORE), _files(AFTER)
    assert set(after) - set(before) == {"UNRESOLVED.txt"}
    assert set(before) - set(after) == set()
    # Nothing here needs a hand: apply must resolve every site (see README).
    assert after["UNRESOLVED.txt"] == b""
    changed = sorted(rel for rel in before if before[rel] != after[rel])
    assert changed == [
        "kestrel/collect.py",
        "kestrel/host_storage.py",
        "kestrel/model.py",
        "kestrel/policy.py",
        "kestrel/ppo.py",
        "kestrel/storage.py",
        "tests/fakes.py",
        "tests/test_model.py",
        "tests/test_policy.py",
        "tests/test_storage.py",
    ]
    for rel in changed:
        old = before[rel].decode().splitlines()
        new = after[rel].decode().splitlines()
        diff = [
            line
            for line in difflib.unified_diff(old, new, lineterm="", n=0)
            if not line.startswith(("---", "+++", "@@"))
        ]
        added = [line[1:] for line in diff if line.startswith("+")]
        removed = [line[1:] for line in diff if line.startswith("-")]
        # Every edited or added line is about the companion; nothing else moves.
        for line in added:
            assert _COMPANION_RE.search(line), f"{rel}: {line}"
        assert len(removed) <= len(added)
        ast.parse(after[rel], filename=rel)


def test_already_migrated_sites_are_untouched_in_the_golden() -> None:
    """Calls and definitions the hand migration already did: apply must leave them as they are."""
    for rel, line in [
        ("kestrel/collect.py", "                bp.to(self.device),"),
        ("kestrel/collect.py", "            blueprint_indices=next_bp.long(),"),
        (
            "kestrel/collect.py",
            "        step = policy.get_action(normalizer(obs)[0], bp[0], hidden, slot_mask[0], "
            "blueprint_mask[0], True)",
        ),
        (
            "kestrel/collect.py",
            "        out = policy.forward(normalizer(obs), blueprint_indices=bp_idx)",
        ),
        (
            "kestrel/train.py",
            "        obs, _ = batch_obs_to_features([env.snapshot() for env in envs], layout)",
        ),
        (
            "tests/fakes.py",
            "            features, blueprint_indices = features[None], blueprint_indices[None]",
        ),
        ("tests/fakes.py", "            blueprint_indices = blueprint_indices.unsqueeze(1)"),
        (
            "tests/test_policy.py",
            '    batch = bundle.get_action(features, bp.to("cpu"), bundle.initial_hidden(4))',
        ),
        (
            "tests/test_policy.py",
            "        out = bundle.forward(features, blueprint_indices=torch.full((3, 3), -1))",
        ),
    ]:
        before = (BEFORE / rel).read_text(encoding="utf-8").splitlines()
        after = (AFTER / rel).read_text(encoding="utf-8").splitlines()
        assert before.count(line) == 1, f"{rel}: {line!r} not in before/"
        assert after.count(line) == 1, f"{rel}: {line!r} changed in after/"


def test_before_keeps_the_patterns_the_engine_must_handle() -> None:
    """Issue 10 item 7: the shapes of code this fixture exists for; a simplification fails here."""
    storage = _tree("kestrel/storage.py")
    buffer = next(
        n
        for n in ast.walk(storage)
        if isinstance(n, ast.ClassDef) and n.name == "TensorRolloutBuffer"
    )
    assert any(ast.unparse(d) == "dataclass" for d in buffer.decorator_list)
    declared = {
        s.target.id: ast.unparse(s.value)
        for s in buffer.body
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None
    }
    assert declared["states"] == "field(init=False)"
    methods = _functions(buffer)
    for allocator in ("TensorRolloutBuffer.__post_init__", "TensorRolloutBuffer.reset"):
        assert "self.states = torch.zeros(" in ast.unparse(methods[allocator])
    assert "__init__" not in {m.split(".")[1] for m in methods}
    assert _params(_functions(storage)["TamiyoRolloutBuffer.add"])[:3] == [
        "self",
        "env_id",
        "state",
    ]

    host = ast.unparse(_tree("kestrel/host_storage.py"))
    assert "class NumpyRolloutBuffer(TamiyoRolloutBuffer)" in host
    assert "self.states = np.zeros((num_envs, max_steps, obs_dim), dtype=np.float32)" in host

    bundle = _functions(_tree("kestrel/policy.py"))
    get_action = ast.unparse(bundle["LSTMPolicyBundle.get_action"])
    assert "need_expand = features.dim() == 1" in get_action
    assert "features = features.view(1, -1)" in get_action
    assert "features = features.unsqueeze(1)" in ast.unparse(bundle["LSTMPolicyBundle.forward"])
    evaluate = ast.unparse(bundle["LSTMPolicyBundle.evaluate_actions"])
    assert "features = features.reshape(batch, seq, -1)" in evaluate
    # Half migrated by hand: the rollout path has the parameter, the update path does not.
    for cls in ("PolicyBundle", "LSTMPolicyBundle"):
        assert _params(bundle[f"{cls}.get_action"])[2] == NEW
        assert _params(bundle[f"{cls}.forward"])[2] == NEW
        assert NEW not in _params(bundle[f"{cls}.evaluate_actions"])
        assert NEW not in _params(bundle[f"{cls}.get_value"])

    model = ast.unparse(_tree("kestrel/model.py"))
    assert "self.forward(obs[:, None], hidden, slot_mask, blueprint_mask)" in model
    assert "self(obs, hidden, slot_mask, blueprint_mask)" in model

    fake = _functions(_tree("tests/fakes.py"))
    assert {"FakePolicy.get_action", "FakePolicy.forward", "FakePolicy.evaluate_actions"} <= set(
        fake
    )
    tests = (BEFORE / "tests" / "test_storage.py").read_text(encoding="utf-8")
    assert "state=torch.randn(OBS_DIM)," in tests
    assert 'with pytest.raises(IndexError, match="env 0 is full"):' in tests

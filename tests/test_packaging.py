"""The distribution splits by use: `esper-migrate` installs and runs without the training stack
(torch, numpy, gymnasium, matplotlib), which the [contracts]/[ref] extras add; without them,
`import contracts` and `esper-ref` fail with one line naming the extra.

A real light venv (pip install, no extras) is built by .ci/run, which also builds and installs
the wheel and the sdist; these tests run in the dev venv and hide the heavy modules from a
fresh interpreter instead (`sys.modules[name] = None` makes `import name` fail as if it were
not installed, and `importlib.util.find_spec(name)` return None).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTIAL = ROOT / "tests" / "esper_migrate" / "fixtures" / "phase4" / "partial"
HEAVY = ("torch", "numpy", "gymnasium", "matplotlib")
HIDE = "import sys\nfor _name in {names!r}:\n    sys.modules[_name] = None\n"


def _python(
    code: str, *, hide: tuple[str, ...] = HEAVY, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE.format(names=hide) + code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for req in requirements:
        name = req.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower())
    return names


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_light_install_leaves_out_the_training_stack() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    base = _requirement_names(project["dependencies"])
    assert base >= {"libcst", "pydantic", "typer", "pathspec"}
    assert not base & set(HEAVY), base
    extras = project["optional-dependencies"]
    assert _requirement_names(extras["contracts"]) == {"torch"}
    assert "esper-phase4" in _requirement_names(extras["ref"])
    assert {"numpy", "gymnasium", "matplotlib"} <= _requirement_names(extras["ref"])
    # [dev] brings [ref], so `pip install -e ".[dev]"` is still the one command to develop.
    assert any(req.startswith("esper-phase4[ref") for req in extras["dev"])


def test_torch_range_keeps_a_users_torch() -> None:
    from packaging.requirements import Requirement

    extras = _pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    (torch,) = (Requirement(r) for r in extras["contracts"])
    for version in ("2.4.0", "2.6.0", "2.13.0+cpu", "2.14.1", "3.0.0"):
        assert torch.specifier.contains(version, prereleases=False), version
    assert not torch.specifier.contains("2.3.1")


def test_esper_migrate_check_runs_without_the_training_stack() -> None:
    # Any import of a hidden module fails the run (exit 2, "internal error").
    code = (
        "from esper_migrate.cli import main\nsys.exit(main(['check', '--no-cache', '-q', '.']))\n"
    )
    proc = _python(code, cwd=PARTIAL)
    assert proc.returncode == 1, proc.stderr  # the fixture's planted findings fail
    assert "EM001" in proc.stdout
    assert proc.stderr == ""


def test_import_contracts_without_torch_fails_in_one_line() -> None:
    proc = _python("import contracts\n", hide=("torch",))
    assert proc.returncode == 1
    assert proc.stderr == (
        "ModuleNotFoundError: contracts needs torch, which the light install of esper-phase4 "
        "leaves out: pip install 'esper-phase4[contracts]' (or [ref])\n"
    )


def test_missing_torch_is_still_an_import_error_to_catch() -> None:
    proc = _python(
        "try:\n"
        "    from contracts import contract\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__mro__[1].__name__, exc.name)\n"
        "raise ValueError('unrelated')\n",
        hide=("torch",),
    )
    assert proc.stdout == "ModuleNotFoundError torch\n"
    # Only the missing extra is cut to one line: other crashes keep their traceback.
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.endswith("ValueError: unrelated\n")


@pytest.mark.parametrize("argv", [["train"], ["evaluate", "x.pt"], ["train", "--num-envs", "2"]])
def test_esper_ref_without_the_extra_fails_in_one_line(argv: list[str]) -> None:
    code = f"from esper_ref.cli import main\nsys.exit(main({argv!r}))\n"
    proc = _python(code)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        "esper-ref: error: torch, numpy, gymnasium, matplotlib not installed: esper-ref needs "
        "the [ref] extra (pip install 'esper-phase4[ref]')\n"
    )


def test_esper_ref_version_and_help_need_no_extra() -> None:
    proc = _python(
        "from esper_ref.cli import main\n"
        "assert main(['-V']) == 0\n"
        "assert main(['-h']) == 0\n"
        "assert 'torch' not in {n for n in sys.modules if sys.modules[n] is not None}\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("esper-ref ")


def test_pre_commit_hooks_install_the_light_distribution() -> None:
    import yaml  # libcst's dependency: always there

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {hook["id"] for hook in hooks} == {"esper-migrate-check", "esper-migrate-apply"}
    for hook in hooks:
        # pre-commit pip-installs this repository with no extras: the light distribution.
        assert hook["language"] == "python"
        assert not hook.get("additional_dependencies")
        assert hook["entry"].split()[0] == "esper-migrate"


def test_dev_install_keeps_the_pinned_torch() -> None:
    from importlib.metadata import version

    # The [dev] pin keeps the 2.13 CPU build served on these machines: the open range of
    # [contracts] alone would let pip take the newest torch it finds, a CUDA build of GBs.
    assert version("torch").startswith("2.13.0")

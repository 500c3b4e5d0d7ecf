"""The project installs as one package tree with two working console scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import esper_migrate
import esper_ref


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_esper_migrate_import_and_version_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import esper_migrate.cli as cli\n"
        "r = CliRunner().invoke(cli.app, ['--version'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert r.output.startswith('esper-migrate '), r.output\n"
        "r = CliRunner().invoke(cli.app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('torch' in sys.modules)\n"
    )
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("script", ["esper-migrate", "esper-ref"])
def test_console_scripts_report_version_and_help(script: str) -> None:
    exe = shutil.which(script)
    assert exe is not None, f"{script} is not on PATH: was the project installed?"
    version = _run(exe, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"{script} {esper_migrate.__version__}"
    help_ = _run(exe, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "Usage" in help_.stdout


def test_packages_share_one_version() -> None:
    from importlib.metadata import version

    assert esper_migrate.__version__ == esper_ref.__version__ == version("esper-phase4")

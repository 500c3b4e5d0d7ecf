"""esper_ref's tests: ``reflib`` (their shared helpers) is importable from them."""

from __future__ import annotations

import sys
from pathlib import Path

# The tests import with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

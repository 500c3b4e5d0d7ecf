"""Codemods and a lint that thread ``blueprint_indices`` through a Phase 4 codebase.

This package must never import torch: the lint starts in CI on every push.
"""

from esper_migrate._version import __version__

__all__ = ["__version__"]

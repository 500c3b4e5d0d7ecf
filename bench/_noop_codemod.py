"""A libcst codemod that changes nothing: the floor of `python -m libcst.tool codemod`.

Every file is still read, parsed into a concrete syntax tree, visited in full and rendered
back, which is the work any real libcst codemod pays before it edits anything. Used by
bench/apply_speed.py:

    python -m libcst.tool codemod -x bench._noop_codemod.NoOp --no-format -j 1 TREE
"""

from __future__ import annotations

from libcst.codemod import VisitorBasedCodemodCommand


class NoOp(VisitorBasedCodemodCommand):
    DESCRIPTION = "Visit every node of every file and change nothing."

"""Rewrite rules: each module plans one kind of edit (or derives one kind of value) and carries
its before/after examples in ``EXAMPLES``; ``tests/esper_migrate/test_rule_examples.py`` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """A self-contained module and what the engine must make of it.

    ``after`` is the exact expected output (None: the file must stay unchanged). ``unresolved``
    is a substring of the reason of a site the engine must report instead of changing.
    """

    before: str
    after: str | None = None
    unresolved: str | None = None


RULE_MODULES = [
    "parameters",
    "call_arguments",
    "dict_entries",
    "storage",
    "derive_parameter",
    "derive_producer",
    "derive_transform",
    "derive_chain",
    "derive_lookup",
    "derive_synthesis",
]

"""mypy plugin: ``F32["batch obs_dim"]`` (and every alias of ``contracts.aliases``) is a Tensor.

Enable it in the mypy configuration::

    [tool.mypy]
    plugins = ["contracts.mypy_plugin"]

The string inside the brackets is a spec, not a type, so without the plugin mypy would try to
read it as a forward reference. Only mypy imports this module.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.plugin import AnalyzeTypeContext, Plugin
from mypy.types import Type, UnboundType

_ALIASES = frozenset(
    f"contracts.aliases.{name}"
    for name in (
        "BF16",
        "F16",
        "F32",
        "F64",
        "I8",
        "I16",
        "I32",
        "I64",
        "U8",
        "Bool",
        "Complex",
        "Float",
        "Int",
        "Shaped",
    )
)


def _tensor(ctx: AnalyzeTypeContext) -> Type:
    # The subscript holds a spec string: ignore it, the annotation means a plain Tensor.
    return ctx.api.named_type("torch.Tensor", [])


def _skip_spec_strings_when_finding_type_vars() -> None:
    # Before analysing a signature, mypy looks for type variables in every subscript and so
    # looks up ``F32["batch"]``'s string as a name ("batch" is not defined). The alias
    # subscripts hold no types: skip them there, as mypy does for Literal[...].
    try:
        from mypy.typeanal import FindTypeVarVisitor
    except ImportError:  # pragma: no cover - another mypy layout: single-name dims may warn
        return
    original = FindTypeVarVisitor.visit_unbound_type
    if getattr(original, "_contracts_patched", False):
        return

    def visit_unbound_type(self: FindTypeVarVisitor, t: UnboundType) -> None:
        node = self.api.lookup_qualified(t.name, t, suppress_errors=True)
        if node is not None and node.fullname in _ALIASES:
            return
        original(self, t)

    visit_unbound_type._contracts_patched = True  # type: ignore[attr-defined]
    FindTypeVarVisitor.visit_unbound_type = visit_unbound_type  # type: ignore[method-assign]


class ContractsPlugin(Plugin):
    def get_type_analyze_hook(self, fullname: str) -> Callable[[AnalyzeTypeContext], Type] | None:
        return _tensor if fullname in _ALIASES else None


def plugin(version: str) -> type[Plugin]:
    _skip_spec_strings_when_finding_type_vars()
    return ContractsPlugin

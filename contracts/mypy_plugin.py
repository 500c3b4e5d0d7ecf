"""mypy plugin: ``F32["batch obs_dim"]`` (and every alias of ``contracts.aliases``) is a Tensor.

Enable it in the mypy configuration::

    [tool.mypy]
    plugins = ["contracts.mypy_plugin"]

The string inside the brackets is a spec, not a type, so without the plugin mypy would try to
read it as a forward reference. Before the plugin is asked, mypy still looks up a string that
is a bare name (``F32["batch"]``) when it searches the signature for type variables: write a
one-dim alias ``F32[" batch,"]``. Only mypy imports this module.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.plugin import AnalyzeTypeContext, Plugin
from mypy.types import Type

from contracts import aliases

# The names come from contracts.aliases itself (importing this module already runs the
# contracts package), so a new alias is a Tensor to mypy without a second list to update.
_ALIASES = frozenset(
    f"contracts.aliases.{name}" for name in aliases.__all__ if name != "TensorAlias"
)


def _tensor(ctx: AnalyzeTypeContext) -> Type:
    # The subscript holds a spec string: ignore it, the annotation means a plain Tensor.
    return ctx.api.named_type("torch.Tensor", [])


class ContractsPlugin(Plugin):
    def get_type_analyze_hook(self, fullname: str) -> Callable[[AnalyzeTypeContext], Type] | None:
        return _tensor if fullname in _ALIASES else None


def plugin(version: str) -> type[Plugin]:
    return ContractsPlugin

"""Per-file analysis state shared by the rules: source positions, scopes, bindings, types.

Works on the stdlib ``ast`` tree (already needed for the index), so planning a file costs no
libcst parse; only files with planned edits are handed to libcst by the rewriter.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from esper_migrate.index import (
    FunctionInfo,
    Index,
    ParamInfo,
    TargetMethod,
    callee_name,
    import_base,
    statements,
    type_name,
)
from esper_migrate.insertion import Insertion, insertion
from esper_migrate.records import Code, Edit, EditKind, Span, Tier, Unit
from esper_migrate.spec import MigrationSpec, Placement

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Binding:
    """One assignment of a name: where, and from what."""

    name: str
    line: int
    col: int
    #: "param", "assign", "unpack", "for", "with", "import" or "other".
    kind: str
    value: ast.expr | None = None
    #: For "unpack": the tuple target and the position of the name in it.
    tuple_node: ast.Tuple | ast.List | None = None
    position: int = -1
    #: For "param": the annotation's type name.
    annotation: str | None = None
    stmt: ast.stmt | None = None

    @property
    def bound_at(self) -> tuple[int, int]:
        """Where the name holds this value: after an assignment statement, at a binding
        otherwise."""
        if isinstance(self.stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            return (self.stmt.end_lineno or self.line, self.stmt.end_col_offset or 0)
        return (self.line, self.col)


@dataclass
class Scope:
    """A function (or the module): its bindings and, for methods, its class."""

    node: FunctionNode | ast.Module
    parent: Scope | None
    cls: str | None
    target: TargetMethod | None = None
    _bindings: dict[str, list[Binding]] | None = field(default=None, repr=False)

    @property
    def bindings(self) -> dict[str, list[Binding]]:
        """Name -> its bindings, collected on first use (most scopes are never asked)."""
        if self._bindings is None:
            self._bindings = {}
            _collect_bindings(self)
        return self._bindings

    @property
    def function(self) -> FunctionNode | None:
        return None if isinstance(self.node, ast.Module) else self.node

    def lookup(self, name: str, line: int, col: int = 1 << 30) -> Binding | None:
        """The latest binding of ``name`` before (line, col), searching enclosing scopes. An
        assignment binds where its statement ends: its own right-hand side reads the binding
        before it (``features = features.unsqueeze(1)``)."""
        scope: Scope | None = self
        while scope is not None:
            best: Binding | None = None
            for b in scope.bindings.get(name, []):
                if b.bound_at < (line, col) and (best is None or b.bound_at >= best.bound_at):
                    best = b
            if best is None and scope is self:
                # A name bound later in a loop body may flow backwards; take any binding.
                params = [b for b in scope.bindings.get(name, []) if b.kind == "param"]
                best = params[0] if params else None
            if best is not None:
                return best
            scope = scope.parent
        return None

    def bound_names(self) -> set[str]:
        return set(self.bindings)


def own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a scope, not descending into nested functions, lambdas or classes."""
    stack: list[ast.AST] = list(ast.iter_child_nodes(node))
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
        ):
            stack.extend(ast.iter_child_nodes(current))


def _collect_bindings(scope: Scope) -> None:
    node = scope.node

    table = scope._bindings
    assert table is not None

    def add(b: Binding) -> None:
        table.setdefault(b.name, []).append(b)

    if not isinstance(node, ast.Module):
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
            add(Binding(arg.arg, node.lineno, 0, "param", annotation=type_name(arg.annotation)))
        for extra in (a.vararg, a.kwarg):
            if extra is not None:
                add(Binding(extra.arg, node.lineno, 0, "param"))
    for child in own_nodes(node):
        if isinstance(child, ast.Assign):
            for tgt in child.targets:
                _bind_target(scope, tgt, child.value, child, add)
        elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
            add(
                Binding(
                    child.target.id,
                    child.lineno,
                    child.col_offset,
                    "assign" if child.value is not None else "other",
                    value=child.value,
                    annotation=type_name(child.annotation),
                    stmt=child,
                )
            )
        elif isinstance(child, ast.AugAssign) and isinstance(child.target, ast.Name):
            add(Binding(child.target.id, child.lineno, child.col_offset, "other", stmt=child))
        elif isinstance(child, ast.For | ast.AsyncFor | ast.comprehension):
            for name in ast.walk(child.target):
                if isinstance(name, ast.Name):
                    line = getattr(child, "lineno", name.lineno)
                    add(Binding(name.id, line, name.col_offset, "for", value=child.iter))
        elif isinstance(child, ast.withitem) and child.optional_vars is not None:
            for name in ast.walk(child.optional_vars):
                if isinstance(name, ast.Name):
                    add(Binding(name.id, name.lineno, name.col_offset, "with"))
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            add(Binding(child.name, child.lineno, child.col_offset, "other"))
        elif isinstance(child, ast.Import | ast.ImportFrom):
            for alias in child.names:
                add(
                    Binding(
                        (alias.asname or alias.name).split(".")[0],
                        child.lineno,
                        child.col_offset,
                        "import",
                    )
                )
        elif isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
            add(
                Binding(
                    child.target.id, child.lineno, child.col_offset, "assign", value=child.value
                )
            )


def _bind_target(scope: Scope, tgt: ast.expr, value: ast.expr, stmt: ast.stmt, add: object) -> None:
    assert callable(add)
    if isinstance(tgt, ast.Name):
        add(Binding(tgt.id, stmt.lineno, stmt.col_offset, "assign", value=value, stmt=stmt))
    elif isinstance(tgt, ast.Tuple | ast.List):
        for i, elt in enumerate(tgt.elts):
            if isinstance(elt, ast.Name):
                add(
                    Binding(
                        elt.id,
                        stmt.lineno,
                        stmt.col_offset,
                        "unpack",
                        value=value,
                        tuple_node=tgt,
                        position=i,
                        stmt=stmt,
                    )
                )
            else:
                for name in ast.walk(elt):
                    if isinstance(name, ast.Name):
                        add(Binding(name.id, stmt.lineno, stmt.col_offset, "other"))


def _expects_type_error(call: ast.Call) -> bool:
    """``pytest.raises(TypeError)``: the old call is kept on purpose, to show that it fails.
    ``pytest.raises(IndexError)`` expects the call to bind and fail later: it is migrated."""
    if not call.args:
        return True
    expected = call.args[0]
    names = expected.elts if isinstance(expected, ast.Tuple) else [expected]
    return any(callee_name(n) == "TypeError" for n in names)


class FileContext:
    """One file under planning: its source, tree, scopes and the edits planned so far."""

    def __init__(
        self, path: str, source: bytes, tree: ast.Module, index: Index, spec: MigrationSpec
    ) -> None:
        self.path = path
        self.source = source
        self.tree = tree
        self.index = index
        self.spec = spec
        #: The planned units (root causes), in planning order.
        self.units: list[Unit] = []
        #: Per-file analyses the rules share (computed by the first rule that needs one).
        self.shared: dict[str, object] = {}
        self._line_starts = [0]
        for i, byte in enumerate(source):
            if byte == 0x0A:
                self._line_starts.append(i + 1)
        self.scopes: dict[int, Scope] = {}
        #: Calls and dict literals (outside exempt blocks for calls) with their scopes.
        self.calls: list[tuple[ast.Call, Scope]] = []
        self.dicts: list[tuple[ast.Dict, Scope]] = []
        self.class_defs: list[ast.ClassDef] = []
        self._planned: set[tuple[object, ...]] = set()
        #: Dict keys (e.g. "state") whose literals in this file carry the companion beside them.
        self.companion_dict_keys: set[str] = set()
        self.module_scope = self._build_scopes()

    # -- positions -----------------------------------------------------------------------

    def offset(self, line: int, col: int) -> int:
        return self._line_starts[line - 1] + col

    def text(self, node: ast.AST) -> str:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return self.source[start:end].decode("utf-8")

    def splice(self, outer: ast.AST, inner: ast.AST, replacement: str) -> str:
        """``outer``'s text with ``inner``'s text replaced."""
        o_start = self.offset(outer.lineno, outer.col_offset)  # type: ignore[attr-defined]
        o_end = self.offset(outer.end_lineno, outer.end_col_offset)  # type: ignore[attr-defined]
        i_start = self.offset(inner.lineno, inner.col_offset)  # type: ignore[attr-defined]
        i_end = self.offset(inner.end_lineno, inner.end_col_offset)  # type: ignore[attr-defined]
        src = self.source
        return src[o_start:i_start].decode("utf-8") + replacement + src[i_end:o_end].decode("utf-8")

    def char_col(self, line: int, byte_col: int) -> int:
        start = self._line_starts[line - 1]
        return len(self.source[start : start + byte_col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> Span:
        line, col = node.lineno, node.col_offset  # type: ignore[attr-defined]
        end_line, end_col = node.end_lineno, node.end_col_offset  # type: ignore[attr-defined]
        return (line, self.char_col(line, col), end_line, self.char_col(end_line, end_col))

    def line_indent(self, line: int) -> str:
        start = self._line_starts[line - 1]
        raw = self.source[start : start + 200].decode("utf-8", "replace")
        return raw[: len(raw) - len(raw.lstrip(" \t"))]

    # -- scopes --------------------------------------------------------------------------

    def _build_scopes(self) -> Scope:
        """One walk over the tree: scopes, calls, dicts, classes, exempt blocks."""
        module = Scope(self.tree, None, None)
        self.scopes[id(self.tree)] = module
        exempt_names = set(self.spec.exempt.context_managers)
        exempt_callers = {name.rpartition(".")[2] for name in exempt_names}
        calls, dicts, classes = self.calls, self.dicts, self.class_defs
        # (node, scope, enclosing class name, exempt)
        stack: list[tuple[ast.AST, Scope, str | None, bool]] = [(self.tree, module, None, False)]
        while stack:
            node, scope, cls, exempt = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Call):
                    if not exempt:
                        calls.append((child, scope))
                elif isinstance(child, ast.Dict):
                    dicts.append((child, scope))
                elif isinstance(child, ast.ClassDef):
                    classes.append(child)
                    stack.append((child, scope, child.name, exempt))
                    continue
                elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    if cls:
                        target = self.index.is_target(cls, child.name)
                    elif node is self.tree:
                        target = self.index.is_target("", child.name)
                    else:
                        target = None
                    inner = Scope(child, scope, cls, target)
                    self.scopes[id(child)] = inner
                    stack.append((child, inner, None, exempt))
                    continue
                elif (
                    isinstance(child, ast.Lambda)
                    and isinstance(node, ast.Call)
                    and (callee_name(node.func) or "") in exempt_callers
                ):
                    # ``raises(lambda: old_call(...), ...)``: expected to fail, as inside the
                    # exempt context manager.
                    stack.append((child, scope, cls, True))
                    continue
                elif isinstance(child, ast.With | ast.AsyncWith) and any(
                    isinstance(item.context_expr, ast.Call)
                    and self.dotted(item.context_expr.func) in exempt_names
                    and _expects_type_error(item.context_expr)
                    for item in child.items
                ):
                    for item in child.items:
                        stack.append((item, scope, cls, exempt))
                    for stmt in child.body:
                        stack.append((stmt, scope, cls, True))
                    continue
                stack.append((child, scope, cls, exempt))
        calls.sort(key=lambda c: (c[0].lineno, c[0].col_offset))
        dicts.sort(key=lambda d: (d[0].lineno, d[0].col_offset))
        return module

    @staticmethod
    def dotted(node: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        return ".".join(reversed(parts))

    # -- modules -------------------------------------------------------------------------

    def _imports(self) -> dict[tuple[int, int, str], str]:
        """(line, col of the import statement, name it binds) -> the module that name is, as
        a dotted name (``import a.b`` binds ``a``; ``import a.b as m`` and ``from a import b``
        bind the module ``a.b``; a relative import is spelled from this file's path)."""
        cached = self.shared.get("imports")
        if cached is not None:
            return cached  # type: ignore[return-value]
        table: dict[tuple[int, int, str], str] = {}
        for node in statements(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    module = alias.name if alias.asname else bound
                    table[(node.lineno, node.col_offset, bound)] = module
            elif isinstance(node, ast.ImportFrom):
                base = import_base(self.path, node.level, node.module)
                for alias in node.names:
                    bound = alias.asname or alias.name
                    table[(node.lineno, node.col_offset, bound)] = (
                        f"{base}.{alias.name}" if base else alias.name
                    )
        self.shared["imports"] = table
        return table

    def aliased_functions(self) -> frozenset[str]:
        """Names this file imports a function target under (``import ... as loss``)."""
        cached = self.shared.get("aliased_functions")
        if cached is None:
            targets = self.spec.target_functions
            cached = frozenset(
                bound
                for (_, _, bound), module in (self._imports() if targets else {}).items()
                if module.rpartition(".")[2] in targets and bound not in targets
            )
            self.shared["aliased_functions"] = cached
        return cached  # type: ignore[return-value]

    def module_of(self, expr: ast.expr, scope: Scope, line: int, col: int) -> str | None:
        """The module an expression names through this file's imports (``losses``,
        ``pkg.losses``), as a dotted name; None when it is not an imported name."""
        dotted = self.dotted(expr)
        if dotted is None:
            return None
        root, _, rest = dotted.partition(".")
        b = scope.lookup(root, line, col)
        if b is None or b.kind != "import":
            return None
        module = self._imports().get((b.line, b.col, root))
        if module is None:
            return None
        return f"{module}.{rest}" if rest else module

    # -- types ---------------------------------------------------------------------------

    def expr_type(self, expr: ast.expr, scope: Scope, line: int) -> str | None:
        """The class an expression evaluates to an instance of, where the code says so."""
        if isinstance(expr, ast.Name):
            if expr.id == "self" and scope.cls is not None:
                return scope.cls
            b = scope.lookup(expr.id, line)
            if b is None:
                return None
            if b.annotation is not None:
                return b.annotation
            if b.kind == "assign" and isinstance(b.value, ast.Call):
                name = callee_name(b.value.func)
                if name is not None and self.index.is_known_class(name):
                    return name
                if name is not None and name[:1].isupper():
                    return name
            return None
        if isinstance(expr, ast.Attribute):
            owner = self.expr_type(expr.value, scope, line)
            if owner is None:
                return None
            return self.index.attr_type(owner, expr.attr)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            if self.index.is_known_class(expr.func.id):
                return expr.func.id
            if expr.func.id == "super" and scope.cls is not None:
                info = self.index.class_info(scope.cls)
                if info and info["bases"]:
                    return info["bases"][0]
        return None

    # -- records -------------------------------------------------------------------------

    def once(self, *key: object) -> bool:
        """True the first time a key is seen (dedupes edits planned from several sites)."""
        if key in self._planned:
            return False
        self._planned.add(key)
        return True

    def edit(
        self,
        kind: EditKind,
        node: ast.AST,
        text: str,
        reason: str,
        how: str,
        *,
        code: Code = Code.MISSING_ARGUMENT,
        tier: Tier = Tier.RESOLVED,
        at: ast.AST | None = None,
        **fields: object,
    ) -> Edit:
        """An edit of ``kind`` anchored on ``node`` (located at ``at``, default the node)."""
        where = at if at is not None else node
        line = where.lineno  # type: ignore[attr-defined]
        return Edit(
            kind=kind,
            path=self.path,
            line=line,
            col=self.char_col(line, where.col_offset),  # type: ignore[attr-defined]
            code=code,
            tier=tier,
            reason=reason,
            derivation=how,
            anchor=self.span(node),
            text=text,
            **fields,  # type: ignore[arg-type]
        )

    def unit(
        self,
        node: ast.AST,
        code: Code,
        tier: Tier,
        message: str,
        edits: list[Edit] | tuple[Edit, ...] = (),
        reason: str | None = None,
        suggestion: str | None = None,
    ) -> Unit:
        line = node.lineno  # type: ignore[attr-defined]
        col = self.char_col(line, node.col_offset)  # type: ignore[attr-defined]
        return Unit(self.path, line, col, code, tier, message, tuple(edits), reason, suggestion)

    def add_unit(self, unit: Unit) -> None:
        if self.once("unit", unit.line, unit.col, unit.code, unit.message):
            self.units.append(unit)

    def report(
        self, node: ast.AST, code: Code, tier: Tier, message: str, reason: str, suggestion: str
    ) -> None:
        """An unresolved unit: nothing is changed, the site is named with why and what to do."""
        self.add_unit(self.unit(node, code, tier, message, (), reason, suggestion))

    def placement_problem(self, params: list[ParamInfo], at: Insertion) -> tuple[str, str] | None:
        """(reason, suggestion) when the new parameter cannot go ``at`` its place in ``params``
        without a SyntaxError or a change of meaning: a required one after a defaulted
        positional parameter, an optional one before a required positional parameter, or one
        among positional-only parameters. A keyword-only one fits anywhere among its group
        (required keyword-only parameters may follow defaulted ones)."""
        if at.keyword_only:
            return None
        new = self.spec.parameter.name
        positional = [p for p in params if p["kind"] in ("pos", "posonly") and p["name"] != new]
        before, later = positional[: at.index], positional[at.index :]
        where = f"after `{at.after}`" if at.after is not None else "first"
        if any(p["kind"] == "posonly" for p in later):
            return (
                f"`{new}` {where} would land among the positional-only parameters",
                f"place `{new}` after the `/` (placement.after) or keyword-only",
            )
        if self.spec.parameter.default is None:
            if any(p["has_default"] for p in before):
                anchor = at.after or before[-1]["name"]
                return (
                    f"`{anchor}` has a default, a required `{new}` cannot follow",
                    f"add `{new}` with a default after `{anchor}`",
                )
            return None
        required = [p["name"] for p in later if not p["has_default"]]
        if required:
            return (
                f"an optional `{new}` {where} would precede the required `{required[0]}`",
                f"place `{new}` after `{required[-1]}` (placement.after) or add it by hand",
            )
        return None

    def insertion(
        self, fn: FunctionInfo, storage_add: bool = False, owner: str | None = None
    ) -> Insertion | None:
        """Where the new parameter goes in ``fn`` (a storage ``add`` takes it right after its
        features parameter); None when the placement names no place there."""
        params = fn["params"]
        new = self.spec.parameter.name
        if storage_add:
            positional = [p["name"] for p in params if p["kind"] in ("pos", "posonly")]
            stem = next((n for n in positional if n in self.spec.features.stems), None)
            if stem is None:
                return None
            at = Placement(after=stem)
        else:
            at = self.index.placement_for(fn, owner)
        return insertion(at, params, new)

    def features_param(
        self, fn: FunctionInfo, storage_add: bool = False, owner: str | None = None
    ) -> str | None:
        """The parameter whose argument the companion derives from (see
        :attr:`Insertion.neighbour`)."""
        at = self.insertion(fn, storage_add, owner)
        return at.neighbour if at is not None else None

"""The repository-wide index: classes, bases, protocol members, signatures, attribute types,
producers and their local wrappers.

Built from per-file summaries. :func:`summarize_tree` is a pure function of (path, parsed tree)
and its result is plain JSON-able data, so a caller may cache it keyed by the file's content hash.
Stdlib ``ast`` only: an ``ast`` parse costs a tenth of a libcst parse.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypedDict

from esper_migrate.spec import MigrationSpec, Placement, ProducerSpec, StorageSpec

#: Bumped whenever the summary layout changes (part of any cache key).
SUMMARY_VERSION = 2


class ParamInfo(TypedDict):
    name: str
    annotation: str | None
    has_default: bool
    #: "pos" (positional or keyword), "posonly", "kwonly", "vararg" or "kwarg".
    kind: str


class FunctionInfo(TypedDict):
    name: str
    line: int
    #: Parameters without the leading ``self``/``cls`` of a method.
    params: list[ParamInfo]
    #: ``return f(...)``: the name of f (last component of a dotted callee).
    returns_call: str | None
    #: ``a, b = f(...)`` ... ``return a, b``: the name of f.
    returns_unpacked_call: str | None


class ClassInfo(TypedDict):
    name: str
    path: str
    line: int
    #: Base classes, last component of the dotted name (``nn.Module`` -> ``Module``).
    bases: list[str]
    protocol: bool
    methods: dict[str, FunctionInfo]
    #: Attribute name -> type name, from annotations, constructor calls and annotated params.
    attrs: dict[str, str]


class FileSummary(TypedDict):
    path: str
    version: int
    classes: list[ClassInfo]
    functions: dict[str, FunctionInfo]
    #: The syntax error, when the file does not parse (the rest is then empty).
    error: str | None
    #: Functions defined at module level (``functions`` also has methods and nested ones).
    top_functions: list[str]
    #: Name a module-level ``from M import X [as Y]`` binds -> ``M.X`` (relative ones resolved
    #: from the path): what ``import pkg; pkg.Y(...)`` reaches through a package's re-export.
    reexports: dict[str, str]


def type_name(node: ast.expr | None) -> str | None:
    """The class an annotation names: ``X``, ``m.X``, ``"X"``, ``X | None``, ``Optional[X]``."""
    if node is None:
        return None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            inner = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
        return type_name(inner)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = type_name(node.left), type_name(node.right)
        if right == "None":
            return left
        if left == "None":
            return right
        return None
    if isinstance(node, ast.Subscript) and type_name(node.value) == "Optional":
        return type_name(node.slice)
    return None


def callee_name(node: ast.expr) -> str | None:
    """Last component of a call's function expression (``a.b.f`` -> ``f``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def dotted_path(path: str) -> str:
    """A file's path as a dotted module name (``src/pkg/losses.py`` -> ``src.pkg.losses``,
    ``pkg/__init__.py`` -> ``pkg``); the import's module name is a suffix of it."""
    parts = [p for p in re.split(r"[\\/]+", path) if p and p not in (".", "..")]
    if parts:
        parts[-1] = parts[-1].removesuffix(".py")
        if parts[-1] == "__init__":
            parts.pop()
    return ".".join(parts)


def import_base(path: str, level: int, module: str | None) -> str:
    """The module a ``from ... import`` statement in the file ``path`` imports from, dotted
    (a relative one is spelled from the path: ``from . import x`` in ``pkg/train.py`` and in
    ``pkg/__init__.py`` both import from ``pkg``)."""
    if not level:
        return module or ""
    here = dotted_path(path).split(".")
    package = here if re.search(r"(^|[\\/])__init__\.py$", path) else here[:-1]
    package = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*package, *([module] if module else [])])


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[ParamInfo]:
    a = fn.args
    out: list[ParamInfo] = []
    positional = [*a.posonlyargs, *a.args]
    first_default = len(positional) - len(a.defaults)
    for i, arg in enumerate(positional):
        kind = "posonly" if i < len(a.posonlyargs) else "pos"
        out.append(
            ParamInfo(
                name=arg.arg,
                annotation=type_name(arg.annotation),
                has_default=i >= first_default,
                kind=kind,
            )
        )
    if a.vararg is not None:
        out.append(ParamInfo(name=a.vararg.arg, annotation=None, has_default=True, kind="vararg"))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append(
            ParamInfo(
                name=arg.arg,
                annotation=type_name(arg.annotation),
                has_default=default is not None,
                kind="kwonly",
            )
        )
    if a.kwarg is not None:
        out.append(ParamInfo(name=a.kwarg.arg, annotation=None, has_default=True, kind="kwarg"))
    is_static = any(type_name(d) == "staticmethod" for d in fn.decorator_list)
    if is_method and not is_static and out and out[0]["kind"] in ("pos", "posonly"):
        out = out[1:]
    return out


def statements(node: ast.AST, nested_defs: bool = True) -> Iterator[ast.stmt]:
    """The statements of ``node``'s body at any depth (expressions are not entered: imports,
    assignments and returns are statements). ``nested_defs=False`` yields a nested function or
    class but not the statements inside it (a function's own statements)."""
    stack: list[ast.stmt] = list(getattr(node, "body", []))
    while stack:
        stmt = stack.pop()
        yield stmt
        if not nested_defs and isinstance(
            stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        ):
            continue
        for name in ("body", "orelse", "finalbody"):
            value = getattr(stmt, name, None)
            if isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, ast.stmt))
        for handler in getattr(stmt, "handlers", ()):
            stack.extend(handler.body)
        for case in getattr(stmt, "cases", ()):
            stack.extend(case.body)


def _function_info(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> FunctionInfo:
    returns_call: str | None = None
    returns_unpacked: str | None = None
    unpacked: dict[tuple[str, ...], str] = {}
    returns: list[ast.Return] = []
    for node in statements(fn, nested_defs=False):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            tgt = node.targets[0]
            if isinstance(tgt, ast.Tuple) and isinstance(node.value, ast.Call):
                names = tuple(e.id if isinstance(e, ast.Name) else "" for e in tgt.elts)
                name = callee_name(node.value.func)
                if name is not None and all(names):
                    unpacked[names] = name
        elif isinstance(node, ast.Return) and node.value is not None:
            returns.append(node)
    for ret in returns:
        value = ret.value
        if isinstance(value, ast.Call):
            returns_call = callee_name(value.func) or returns_call
        elif isinstance(value, ast.Tuple) and all(isinstance(e, ast.Name) for e in value.elts):
            key = tuple(e.id for e in value.elts if isinstance(e, ast.Name))
            if key in unpacked:
                returns_unpacked = unpacked[key]
    return FunctionInfo(
        name=fn.name,
        line=fn.lineno,
        params=_params(fn, is_method),
        returns_call=returns_call,
        returns_unpacked_call=returns_unpacked,
    )


def function_info(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionInfo:
    """A module-level function's signature as the index records it."""
    return _function_info(fn, is_method=False)


def method_info(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionInfo:
    """A method's signature as the index records it (without ``self``)."""
    return _function_info(fn, is_method=True)


def _class_info(cls: ast.ClassDef, path: str) -> ClassInfo:
    bases = [b for b in (type_name(base) for base in cls.bases) if b is not None]
    methods: dict[str, FunctionInfo] = {}
    attrs: dict[str, str] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            methods[stmt.name] = _function_info(stmt, is_method=True)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            t = type_name(stmt.annotation)
            if t is not None:
                attrs[stmt.target.id] = t
    for stmt in cls.body:
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        param_types = {p.arg: type_name(p.annotation) for p in stmt.args.args}
        for node in statements(stmt, nested_defs=False):
            target: ast.expr | None = None
            found: str | None = None
            if isinstance(node, ast.AnnAssign):
                target, found = node.target, type_name(node.annotation)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                value = node.value
                if isinstance(value, ast.Call):
                    found = callee_name(value.func)
                elif isinstance(value, ast.Name):
                    found = param_types.get(value.id)
            if (
                found is not None
                and isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and target.attr not in attrs
            ):
                attrs[target.attr] = found
    return ClassInfo(
        name=cls.name,
        path=path,
        line=cls.lineno,
        bases=bases,
        protocol="Protocol" in bases,
        methods=methods,
        attrs=attrs,
    )


def summarize_tree(path: str, tree: ast.Module) -> FileSummary:
    classes: list[ClassInfo] = []
    functions: dict[str, FunctionInfo] = {}
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                classes.append(_class_info(child, path))
                stack.append(child)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if not isinstance(node, ast.ClassDef):
                    functions.setdefault(child.name, _function_info(child, is_method=False))
                else:
                    # Methods double as wrappers when called through ``self.<name>(...)``.
                    functions.setdefault(child.name, _function_info(child, is_method=True))
                stack.append(child)
            elif isinstance(child, ast.stmt):
                stack.append(child)
    classes.sort(key=lambda c: c["line"])
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    reexports = {
        alias.asname or alias.name: f"{base}.{alias.name}" if base else alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for base in [import_base(path, node.level, node.module)]
        for alias in node.names
        if alias.name != "*"
    }
    return FileSummary(
        path=path,
        version=SUMMARY_VERSION,
        classes=classes,
        functions=functions,
        error=None,
        top_functions=top,
        reexports=reexports,
    )


@dataclass
class TargetMethod:
    """A method that gains the parameter, and why."""

    cls: str
    method: str
    #: The spec target (class or protocol) it derives from.
    origin: str
    #: "spec", "subclass" or "structural".
    how: str


@dataclass
class Index:
    """Everything the rules need to know about the repository, across files."""

    spec: MigrationSpec
    classes: dict[str, list[ClassInfo]] = field(default_factory=dict)
    functions: dict[str, list[FunctionInfo]] = field(default_factory=dict)
    #: (class, method) -> why it is a target.
    targets: dict[tuple[str, str], TargetMethod] = field(default_factory=dict)
    #: Class name -> the spec targets (classes or protocols) it is or implements.
    target_types: dict[str, set[str]] = field(default_factory=dict)
    #: Function name -> producer spec (the producers themselves and their local wrappers).
    producers: dict[str, ProducerSpec] = field(default_factory=dict)
    #: Repository-wide results the rules compute once per index (see ``lint.per_index``).
    memo: dict[str, object] = field(default_factory=dict)
    #: id() of an indexed target definition -> the placement its spec target overrides.
    placement_overrides: dict[int, Placement] = field(default_factory=dict)
    #: Function name -> (dotted path of the file that defines it at module level, its info).
    module_functions: dict[str, list[tuple[str, FunctionInfo]]] = field(default_factory=dict)
    #: Dotted path of a file -> the names its module-level ``from M import X`` bind -> ``M.X``.
    reexports: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, summaries: Iterable[FileSummary], spec: MigrationSpec) -> Index:
        index = cls(spec=spec)
        for s in summaries:
            for c in s["classes"]:
                index.classes.setdefault(c["name"], []).append(c)
            for name, fn in s["functions"].items():
                index.functions.setdefault(name, []).append(fn)
            dotted = dotted_path(s["path"])
            for name in s["top_functions"]:
                index.module_functions.setdefault(name, []).append((dotted, s["functions"][name]))
            if s["reexports"]:
                index.reexports.setdefault(dotted, {}).update(s["reexports"])
        index._resolve_producers()
        index._resolve_targets()
        index._resolve_placements()
        return index

    def placement_of(self, cls_name: str | None, method: str) -> Placement:
        """The placement for ``method`` of ``cls_name`` (its spec target's override, else the
        parameter's)."""
        target = self.targets.get((cls_name, method)) if cls_name is not None else None
        if target is not None:
            for t in self.spec.targets:
                if t.name == target.origin:
                    override = t.placement_for(method)
                    if override is not None:
                        return override
        return self.spec.parameter.placement

    def placement_for(self, fn: FunctionInfo, owner: str | None = None) -> Placement:
        """The placement for an indexed definition (by identity) or ``owner``'s method."""
        found = self.placement_overrides.get(id(fn))
        if found is not None:
            return found
        return self.placement_of(owner, fn["name"])

    def _resolve_placements(self) -> None:
        if not any(t.placement or t.method_placement for t in self.spec.targets):
            return
        for cls_name, method in self.targets:
            placement = self.placement_of(cls_name, method)
            if placement is self.spec.parameter.placement:
                continue
            for info in self.classes.get(cls_name, []):
                fn = info["methods"].get(method)
                if fn is not None:
                    self.placement_overrides[id(fn)] = placement
            if cls_name == "":
                for fn in self.functions.get(method, []):
                    self.placement_overrides[id(fn)] = placement

    # -- classes -------------------------------------------------------------------------

    def class_info(self, name: str) -> ClassInfo | None:
        infos = self.classes.get(name)
        return infos[0] if infos else None

    def ancestors(self, name: str) -> list[str]:
        """The class and its bases, breadth first, by name (cycles cut)."""
        seen: list[str] = []
        queue = [name]
        while queue:
            current = queue.pop(0)
            if current in seen:
                continue
            seen.append(current)
            for info in self.classes.get(current, []):
                queue.extend(info["bases"])
        return seen

    def method(self, cls_name: str, method: str) -> FunctionInfo | None:
        """The definition of ``method`` seen from ``cls_name`` (inherited ones included)."""
        for info in self._lineage(cls_name):
            if method in info["methods"]:
                return info["methods"][method]
        return None

    def attr_type(self, cls_name: str, attr: str) -> str | None:
        for info in self._lineage(cls_name):
            if attr in info["attrs"]:
                return info["attrs"][attr]
        return None

    def _lineage(self, cls_name: str) -> Iterator[ClassInfo]:
        """The indexed definitions of the class and of its ancestors, nearest first."""
        for anc in self.ancestors(cls_name):
            yield from self.classes.get(anc, [])

    def is_known_class(self, name: str) -> bool:
        return name in self.classes

    # -- targets -------------------------------------------------------------------------

    def _strip(self, params: list[ParamInfo]) -> list[str]:
        new = self.spec.parameter.name
        return [p["name"] for p in params if p["name"] != new]

    def compatible(self, a: FunctionInfo, b: FunctionInfo) -> bool:
        """Same signature up to the features parameter's name and the new parameter."""
        pa, pb = self._strip(a["params"]), self._strip(b["params"])
        placement = self.placement_for(b)
        at = None if placement.keyword_only else placement.position_in(pb)
        named = at is not None and (
            placement.after in pb or placement.before in pb or placement.position is not None
        )
        if named and at is not None and at > 0:
            # Placed by name: the signatures must agree from the anchor on, anchor included.
            return len(pa) == len(pb) and pa[at - 1 :] == pb[at - 1 :]
        if named and pb:
            # Placed first: they agree after the first parameter (the one it precedes).
            return len(pa) == len(pb) and pa[1:] == pb[1:]
        pos = placement.index
        if len(pa) != len(pb) or len(pa) < pos + 2:
            return False
        return pa[pos + 1 :] == pb[pos + 1 :]

    def _resolve_targets(self) -> None:
        spec_methods: dict[str, set[str]] = {}
        for t in self.spec.targets:
            if t.kind == "function":
                # Keyed with an empty class: ``is_target("", name)``.
                self.targets[("", t.name)] = TargetMethod("", t.name, t.name, "spec")
                continue
            spec_methods.setdefault(t.name, set()).update(t.methods)
        for origin, methods in spec_methods.items():
            self.target_types.setdefault(origin, set()).add(origin)
            for m in methods:
                self.targets[(origin, m)] = TargetMethod(origin, m, origin, "spec")
        for st in self.spec.storage:
            for name in self.classes:
                if st.class_name in self.ancestors(name):
                    self.target_types.setdefault(name, set()).add(st.class_name)
                    self.targets[(name, st.add_method)] = TargetMethod(
                        name, st.add_method, st.class_name, "storage"
                    )
        protocols = sorted({t.name for t in self.spec.targets if t.kind == "protocol"})
        for name, infos in self.classes.items():
            if name in spec_methods:
                continue
            ancestors = self.ancestors(name)[1:]
            for origin in spec_methods:
                if origin in ancestors:
                    self.target_types.setdefault(name, set()).add(origin)
                    for m in spec_methods[origin]:
                        self.targets[(name, m)] = TargetMethod(name, m, origin, "subclass")
            for origin in protocols:
                if origin not in self.target_types.get(name, set()) and self._implements(
                    name, origin, spec_methods[origin]
                ):
                    self.target_types.setdefault(name, set()).add(origin)
                    for m in spec_methods[origin]:
                        if (name, m) not in self.targets:
                            self.targets[(name, m)] = TargetMethod(name, m, origin, "structural")
            for info in infos:
                for m, fn in info["methods"].items():
                    if (name, m) in self.targets:
                        continue
                    for origin, methods in spec_methods.items():
                        if m not in methods:
                            continue
                        ref = self.method(origin, m)
                        if ref is not None and self.compatible(fn, ref):
                            self.target_types.setdefault(name, set()).add(origin)
                            self.targets[(name, m)] = TargetMethod(name, m, origin, "structural")
                            break

    def _implements(self, name: str, protocol: str, methods: set[str]) -> bool:
        """Whether class ``name`` has every member of ``protocol`` the spec names, each with
        the protocol's parameters (the new one aside): structural typing, as a type checker
        decides it, never one method name alone."""
        members = [(m, ref) for m in sorted(methods) if (ref := self.method(protocol, m))]
        if not members:
            return False
        for m, ref in members:
            fn = self.method(name, m)
            if fn is None or self._strip(fn["params"]) != self._strip(ref["params"]):
                return False
        return True

    def module_function(self, module: str, name: str, depth: int = 0) -> FunctionInfo | None:
        """The module-level function ``name`` of the module ``module`` (a dotted name, matched
        against the end of the file's dotted path: ``pkg.losses`` is ``src/pkg/losses.py``),
        followed through re-exports (``pkg/__init__.py``: ``from .losses import f``)."""

        def matches(dotted: str) -> bool:
            return dotted == module or dotted.endswith("." + module)

        for dotted, fn in self.module_functions.get(name, []):
            if matches(dotted):
                return fn
        if depth < 4:
            for dotted, names in self.reexports.items():
                if matches(dotted) and name in names:
                    origin, _, original = names[name].rpartition(".")
                    found = self.module_function(origin, original, depth + 1)
                    if found is not None:
                        return found
        return None

    def is_target(self, cls_name: str, method: str) -> TargetMethod | None:
        return self.targets.get((cls_name, method))

    def target_definitions(self, method: str) -> list[FunctionInfo]:
        """Every indexed definition of ``method`` that is a target (for name-tier matching)."""
        out: list[FunctionInfo] = []
        for (cls_name, m), _ in self.targets.items():
            if m != method:
                continue
            for info in self.classes.get(cls_name, []):
                fn = info["methods"].get(m)
                if fn is not None:
                    out.append(fn)
        return out

    # -- producers and storage -----------------------------------------------------------

    def _resolve_producers(self) -> None:
        for p in self.spec.producers:
            self.producers[p.name] = p
        changed = True
        while changed:
            changed = False
            for name, fns in self.functions.items():
                if name in self.producers:
                    continue
                for fn in fns:
                    via = fn["returns_call"] or fn["returns_unpacked_call"]
                    if via is not None and via in self.producers and via != name:
                        self.producers[name] = self.producers[via]
                        changed = True
                        break

    def producer(self, name: str | None) -> ProducerSpec | None:
        return self.producers.get(name) if name is not None else None

    @cached_property
    def relevance(self) -> re.Pattern[str]:
        """Text a file must contain for any rule to plan something in it: a target type (or
        implementer, subclass, storage class), a producer or wrapper, an attribute typed as a
        target, or a call of a target method by name. Files without it are not planned."""
        names = set(self.target_types) | set(self.producers) | set(self.spec.target_functions)
        attrs: set[str] = set()
        for infos in self.classes.values():
            for info in infos:
                attrs.update(a for a, t in info["attrs"].items() if t in self.target_types)
        methods = set(self.spec.target_methods) | {s.add_method for s in self.spec.storage}

        def alternation(items: set[str]) -> str:
            return "|".join(sorted(map(re.escape, items), key=len, reverse=True))

        alternatives = [rf"\.(?:{alternation(methods)})\s*\("]
        if names:
            alternatives.append(rf"\b(?:{alternation(names)})\b")
        if attrs:
            alternatives.append(rf"\.(?:{alternation(attrs)})\b")
        return re.compile("|".join(alternatives))

    def storage(self, cls_name: str | None) -> StorageSpec | None:
        if cls_name is None:
            return None
        for anc in self.ancestors(cls_name):
            for s in self.spec.storage:
                if s.class_name == anc:
                    return s
        return None

"""Properties of apply over specs drawn from a generator, on the worked examples' trees: it
never writes code that does not parse, a second run changes nothing, and every call it changed
binds under the migrated signature of a definition of that name."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper_migrate.engine import migrate_sources
from esper_migrate.index import ParamInfo, callee_name, function_info, method_info
from esper_migrate.plan.calls import bind
from esper_migrate.spec import MigrationSpec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "docs" / "specs" / "optional_config" / "before"
SOURCES = {
    p.relative_to(TREE).as_posix(): p.read_bytes()
    for p in sorted(TREE.rglob("*.py"))
    if "__pycache__" not in p.parts
}
TARGETS = """
[[parameters.targets]]
name = "Policy"
kind = "protocol"
methods = {protocol}

[[parameters.targets]]
name = "Network"
methods = ["forward"]
{network_placement}
"""
#: A second parameter in the same spec (threaded after the first, as one migration).
SECOND = """
[[parameters]]
name = "extra_mask"
default = "None"
placement = {{{where}}}
sources = [{{kind = "parameter"}}]

[[parameters.targets]]
name = "Network"
methods = ["forward"]
"""
SOURCE_KINDS = {
    "companion": '{kind = "companion"}',
    "self": '{kind = "self"}',
    "parameter": '{kind = "parameter"}',
    "constant": '{kind = "constant", value = "None"}',
}


@st.composite
def specs(draw: st.DrawFn) -> MigrationSpec:
    name = draw(st.sampled_from(["head_weights", "temperature", "extra"]))
    annotation = draw(
        st.sampled_from([None, "float", "dict[str, float] | None", "Mapping[str, float] | None"])
    )
    default = draw(st.sampled_from([None, "None", "1.0"]))
    after = draw(st.sampled_from([None, "obs", "hidden", "scale"]))
    index = draw(st.integers(0, 2))
    kinds = draw(st.permutations(list(SOURCE_KINDS)))[: draw(st.integers(1, 4))]
    lines = ["version = 2", "", "[[parameters]]", f'name = "{name}"']
    if annotation is not None:
        lines.append(f'annotation = "{annotation}"')
        if annotation.startswith("Mapping"):
            lines.append('imports = {Mapping = "from collections.abc import Mapping"}')
    if default is not None:
        lines.append(f'default = "{default}"')
        lines.append(f"require_at_calls = {str(draw(st.booleans())).lower()}")
    lines.append("sources = [" + ", ".join(SOURCE_KINDS[k] for k in kinds) + "]")
    how = draw(st.sampled_from(["after", "before", "last", "first", "before-first"]))
    placement = f"index = {index}"
    if how in ("last", "first"):
        placement += f', position = "{how}"'
    elif how == "before-first":
        placement += ', before = "obs"'  # the first parameter of every target
    elif after:
        placement += f', {how} = "{after}"'
    if draw(st.booleans()):
        # Keyword-only: after/before/position then place it among the keyword-only ones.
        placement += ", keyword_only = true"

    lines.append(f"placement = {{{placement}}}")
    protocol = draw(st.sampled_from(['["act"]', '["act", "value"]', '["value"]']))
    network_placement = draw(
        st.sampled_from(
            [
                "",
                'placement = {position = "last"}',
                'placement = {before = "scale"}',
                'placement = {position = "first"}',
                "placement = {keyword_only = true}",
            ]
        )
    )
    text = "\n".join(lines) + "\n"
    text += TARGETS.format(protocol=protocol, network_placement=network_placement)
    if draw(st.booleans()):
        where = draw(
            st.sampled_from(
                [
                    'position = "last"',
                    'after = "obs"',
                    'position = "first"',
                    'before = "obs"',
                    "keyword_only = true",
                ]
            )
        )
        text += SECOND.format(where=where)
    return parse_spec(text, "drawn")


#: The placements example: module-level functions called by name and through their module.
FUNCTIONS_TREE = ROOT / "docs" / "specs" / "placements" / "before"
FUNCTION_SOURCES = {
    p.relative_to(FUNCTIONS_TREE).as_posix(): p.read_bytes()
    for p in sorted(FUNCTIONS_TREE.rglob("*.py"))
    if "__pycache__" not in p.parts
}
PLACEMENTS = [
    'position = "first"',
    'position = "last"',
    'before = "values"',
    'after = "probs"',
    'after = "obs"',
    "keyword_only = true",
    'keyword_only = true, position = "first"',
    'keyword_only = true, after = "coef"',
    "index = 1",
]


@st.composite
def function_specs(draw: st.DrawFn) -> MigrationSpec:
    """A parameter through the example's loss functions (and maybe its scorer protocol)."""
    default = draw(st.sampled_from([None, "None", '"mean"']))
    lines = ["version = 2", "", "[[parameters]]", 'name = "w"']
    if default is not None:
        lines.append(f"default = '{default}'")  # a TOML literal string: quotes kept
        lines.append(f"require_at_calls = {str(draw(st.booleans())).lower()}")
    kinds = draw(st.permutations(list(SOURCE_KINDS)))[: draw(st.integers(1, 4))]
    lines.append("sources = [" + ", ".join(SOURCE_KINDS[k] for k in kinds) + "]")
    lines.append(f"placement = {{{draw(st.sampled_from(PLACEMENTS))}}}")
    functions = draw(st.sampled_from([["total_loss"], ["entropy"], ["total_loss", "entropy"]]))
    for name in functions:
        lines += ["", "[[parameters.targets]]", f'name = "{name}"', 'kind = "function"']
        if draw(st.booleans()):
            lines.append(f"placement = {{{draw(st.sampled_from(PLACEMENTS))}}}")
    if draw(st.booleans()):
        lines += ["", "[[parameters.targets]]", 'name = "Scorer"', 'kind = "protocol"']
        lines.append('methods = ["score", "rank"]')
    return parse_spec("\n".join(lines) + "\n", "drawn")


def _calls(source: str) -> dict[str, ast.Call]:
    tree = ast.parse(source)
    return {ast.unparse(n): n for n in ast.walk(tree) if isinstance(n, ast.Call)}


def _definitions(sources: dict[str, bytes]) -> dict[str, list[list[ParamInfo]]]:
    """Name -> the parameters of every method and module-level function of that name."""
    out: dict[str, list[list[ParamInfo]]] = {}
    for data in sources.values():
        tree = ast.parse(data)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                out.setdefault(node.name, []).append(function_info(node)["params"])
            if isinstance(node, ast.ClassDef):
                for fn in node.body:
                    if isinstance(fn, ast.FunctionDef):
                        out.setdefault(fn.name, []).append(method_info(fn)["params"])
    return out


def _holds(sources: dict[str, bytes], spec: MigrationSpec) -> None:
    """The three properties of one apply run over ``sources``."""
    out, _, errors = migrate_sources(sources, spec)
    assert errors == {}
    for path, data in out.items():
        ast.parse(data, path)  # never unparsable
    again, _, errors_again = migrate_sources(out, spec)
    assert errors_again == {}
    assert again == out  # a second run changes nothing
    defs = _definitions(out)
    for path, data in out.items():
        before = _calls(sources[path].decode())
        for text, call in _calls(data.decode()).items():
            name = callee_name(call.func)
            if text in before or name is None or not defs.get(name):
                continue
            assert any(bind(params, call) is not None for params in defs[name]), (path, text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_apply_writes_code_that_parses_is_idempotent_and_binds(spec: MigrationSpec) -> None:
    _holds(SOURCES, spec)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(function_specs())
def test_the_properties_hold_for_functions_called_through_their_module(
    spec: MigrationSpec,
) -> None:
    _holds(FUNCTION_SOURCES, spec)

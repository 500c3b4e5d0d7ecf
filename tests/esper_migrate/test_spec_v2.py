"""Spec format 2: the models, the format-1 upgrade and ``esper-migrate spec upgrade``."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper_migrate.cli import main
from esper_migrate.spec import (
    MigrationSpec,
    Placement,
    SpecError,
    builtin_spec_text,
    load_spec,
    parse_spec,
    upgrade_text,
)

_V2 = """\
version = 2

[[parameters]]
name = "head_weights"
annotation = "dict[str, float] | None"
default = "None"
{extra}

[[parameters.targets]]
name = "Policy"
kind = "protocol"
methods = ["act"]
"""


def _v2(extra: str = "") -> str:
    return _V2.format(extra=extra)


def _v1_builtin() -> str:
    """The built-in spec as format 1 wrote it (kept as a file: what a user's copy looks like)."""
    return (Path(__file__).parent / "specs_v1" / "phase4_v1.toml").read_text(encoding="utf-8")


V1 = """\
[parameter]
name = "blueprint_indices"
annotation = "torch.Tensor"
after_position = 0
docstring = "Blueprint index per slot."

[[targets]]
name = "FactoredRecurrentActorCritic"
methods = ["forward", "get_action"]

[[producers]]
name = "batch_obs_to_features"

[[storage]]
class_name = "TamiyoRolloutBuffer"
field = "states"

[exempt]
context_managers = ["pytest.raises"]
"""


def test_builtin_is_format_2_with_the_get_value_restriction() -> None:
    assert "version = 2" in builtin_spec_text()
    spec = load_spec()
    assert spec.version == 2
    assert [p.name for p in spec.parameters] == ["blueprint_indices"]
    (forbid,) = spec.forbidden_calls
    assert forbid.callee == "get_value" and "DEBUG ONLY" in forbid.reason
    assert "get_value" in spec.names


def test_a_format_1_file_loads_as_its_upgrade() -> None:
    v1 = parse_spec(V1)
    v2 = parse_spec(upgrade_text(V1))
    strip = {"source_hash"}
    assert v1.model_dump(exclude=strip) == v2.model_dump(exclude=strip)
    assert v1.parameter.placement.index == 0
    assert v1.storage[0].class_name == "TamiyoRolloutBuffer"


def test_upgrading_the_old_builtin_gives_the_builtin() -> None:
    old = parse_spec(upgrade_text(_v1_builtin()))
    new = load_spec()
    # The same migration; only the new forbidden_calls table was added in format 2.
    assert old.model_dump(exclude={"source_hash", "forbidden_calls"}) == new.model_dump(
        exclude={"source_hash", "forbidden_calls"}
    )


def test_upgrade_refuses_a_format_2_file() -> None:
    with pytest.raises(SpecError, match="not a format-1 spec"):
        upgrade_text(_v2())


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (_v2("bogus = 1"), r"parameters\.0\.bogus: Extra inputs"),
        (_v2('annotation2 = "x"'), r"parameters\.0\.annotation2"),
        (_v2('imports = {Tensor = "Tensor"}'), r"parameters\.0\.imports: .*import statement"),
        (_v2("require_at_calls = 3"), r"parameters\.0\.require_at_calls"),
        (
            _v2('[parameters.placement]\nafter = "x"\nbefore = "y"'),
            r"parameters\.0\.placement: .*at most one of after, before, position",
        ),
        (
            _v2('[parameters.placement]\nposition = "middle"'),
            r"parameters\.0\.placement\.position: Input should be 'first' or 'last'",
        ),
        (_v2('[parameters.placement]\nafter = "class"'), r"placement\.after: .*keyword"),
        (_v2("[parameters.placement]\nindex = -1"), r"placement\.index"),
        (
            _v2("") + '[[forbidden_calls]]\ncallee = "get_value"\n',
            r"forbidden_calls\.0\.reason: Field required",
        ),
        (
            _v2("") + '[[forbidden_calls]]\ncallee = "a b"\nreason = "r"\n',
            r"forbidden_calls\.0\.callee",
        ),
        (_v2("").replace("version = 2", "version = 3"), r"version: Input should be 2"),
        ('version = 2\n[features]\nstems = ["x"]\n', r"parameters: Field required"),
    ],
)
def test_invalid_fields_are_named(text: str, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        parse_spec(text)


def test_a_valid_v2_spec_with_placement_and_imports() -> None:
    spec = parse_spec(
        _v2(
            'imports = {Mapping = "from collections.abc import Mapping"}\n'
            "require_at_calls = true\nstore_on_self = true\n"
            'sources = [{kind = "self", attr = "weights"}, {kind = "constant", value = "{}"}]'
        )
        + '[parameters.placement]\nafter = "obs"\n'
    )
    assert isinstance(spec, MigrationSpec)
    p = spec.parameter
    assert p.default == "None" and p.optional and p.require_at_calls and p.store_on_self
    assert p.annotation == "dict[str, float] | None"
    assert p.placement.after == "obs"
    assert [(s.kind, s.attr, s.value) for s in p.sources] == [
        ("self", "weights", None),
        ("constant", None, "{}"),
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('sources = [{kind = "constant"}]', "constant source needs `value`"),
        ('sources = [{kind = "self", value = "1"}]', "`value` belongs to a constant source"),
        ('sources = [{kind = "derived"}]', r"parameters\.0\.sources\.0\.kind"),
        ("sources = []", r"parameters\.0\.sources: List should have at least 1 item"),
    ],
)
def test_invalid_sources_are_named(extra: str, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        parse_spec(_v2(extra))


def test_first_before_and_keyword_only_placements_load() -> None:
    first = parse_spec(_v2('[parameters.placement]\nposition = "first"')).parameter.placement
    assert first.position_in(["obs", "hidden"]) == 0 and first.position_in([]) == 0
    before = parse_spec(_v2('[parameters.placement]\nbefore = "obs"')).parameter.placement
    assert before.position_in(["obs", "hidden"]) == 0
    kw = parse_spec(_v2("[parameters.placement]\nkeyword_only = true")).parameter.placement
    assert kw.keyword_only and kw.keyword_position_in(["a", "b"]) == 2
    kw_first = Placement(keyword_only=True, position="first")
    assert kw_first.keyword_position_in(["a", "b"]) == 0
    assert Placement(keyword_only=True, after="a").keyword_position_in(["a", "b"]) == 1
    assert Placement(keyword_only=True, before="b").keyword_position_in(["a", "b"]) == 1


def test_function_targets_take_no_methods_and_class_targets_need_them() -> None:
    fn = 'version = 2\n[[parameters]]\nname = "x"\n[[parameters.targets]]\nname = "f"\n'
    assert parse_spec(fn + 'kind = "function"\n').target_functions == {"f"}
    with pytest.raises(SpecError, match=r"targets\.0\.methods: .*no methods"):
        parse_spec(fn + 'kind = "function"\nmethods = ["g"]\n')
    with pytest.raises(SpecError, match=r"targets\.0\.methods: .*at least 1 item"):
        parse_spec(fn + 'kind = "class"\n')


def test_a_placement_per_target_and_per_method() -> None:
    spec = parse_spec(
        _v2("")
        + '[parameters.targets.placement]\nafter = "obs"\n'
        + '[parameters.targets.method_placement]\nact = {position = "last"}\n'
    )
    target = spec.parameter.targets[0]
    assert target.placement_for("act") == target.method_placement["act"]
    with pytest.raises(SpecError, match=r"method_placement: `run` is not one of"):
        parse_spec(_v2("") + "[parameters.targets.method_placement]\nrun = {index = 1}\n")
    first = parse_spec(_v2("") + '[parameters.targets.placement]\nposition = "first"\n')
    assert first.parameter.targets[0].placement_for("act") == Placement(position="first")


def test_several_parameters_thread_one_after_the_other() -> None:
    two = _v2("") + (
        '\n[[parameters]]\nname = "masks"\n[[parameters.targets]]\nname = "P"\nmethods = ["f"]\n'
        '\n[[forbidden_calls]]\ncallee = "g"\nreason = "r"\n'
    )
    spec = parse_spec(two)
    first, second = spec.threads()
    assert [p.name for p in first.parameters] == ["head_weights"]
    assert [p.name for p in second.parameters] == ["masks"]
    assert len(first.forbidden_calls) == 1 and second.forbidden_calls == []
    assert first.source_hash != second.source_hash
    with pytest.raises(SpecError, match="given more than once"):
        parse_spec(two.replace('name = "masks"', 'name = "head_weights"'))


def test_spec_upgrade_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.toml"
    old.write_text(V1, encoding="utf-8")
    assert main(["spec", "upgrade", str(old)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("version = 2\n")
    assert parse_spec(out).parameter.name == "blueprint_indices"
    assert old.read_text(encoding="utf-8") == V1  # never rewritten in place
    assert main(["spec", "upgrade", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read spec" in capsys.readouterr().err


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "name", sorted(p.name for p in FIXTURES.iterdir() if (p / "before").is_dir())
)
def test_v1_and_v2_builtin_give_byte_identical_output(name: str) -> None:
    from esper_migrate.engine import migrate_sources

    root = FIXTURES / name / "before"
    sources = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.py"))
        if "__pycache__" not in p.parts
    }
    v1_out, v1_left, v1_err = migrate_sources(sources, parse_spec(_v1_builtin()))
    v2_out, v2_left, v2_err = migrate_sources(sources, load_spec())
    assert v1_out == v2_out
    assert v1_out != sources  # the fixture is migrated, not left alone
    assert v1_err == v2_err == {}
    assert [u.finding() for u in v1_left] == [u.finding() for u in v2_left]

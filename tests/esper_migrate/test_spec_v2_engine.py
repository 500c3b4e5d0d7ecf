"""What each format-2 field does to the code apply writes and check reports."""

from __future__ import annotations

import ast
from pathlib import Path

from esper_migrate.engine import migrate_sources
from esper_migrate.spec import MigrationSpec, parse_spec


def _spec(param: str = "", targets: str = "", extra: str = "") -> MigrationSpec:
    targets = targets or '[[parameters.targets]]\nname = "Net"\nmethods = ["act"]\n'
    return parse_spec(
        f'version = 2\n{extra}\n[[parameters]]\nname = "w"\n{param}\n{targets}', "test.toml"
    )


def _apply(spec: MigrationSpec, source: str) -> tuple[str, list[str]]:
    out, left, errors = migrate_sources({"m.py": source.encode()}, spec)
    assert errors == {}
    text = out["m.py"].decode()
    ast.parse(text)
    return text, [u.reason or "" for u in left]


NET = """\
class Net:
    def act(self, x, hidden, scale=1.0):
        return x


def run(net: Net, x, h):
    return net.act(x, h)
"""


def test_default_and_annotation_are_written_verbatim() -> None:
    spec = _spec(
        'annotation = "dict[str, float] | None"\ndefault = "None"\nplacement = {after = "hidden"}'
    )
    text, left = _apply(spec, NET)
    assert "def act(self, x, hidden, w: dict[str, float] | None = None, scale=1.0):" in text
    assert "net.act(x, h)" in text  # an optional parameter the call may omit
    assert left == []


def test_before_and_last_place_it_by_name() -> None:
    text, _ = _apply(_spec('default = "None"\nplacement = {before = "scale"}'), NET)
    assert "def act(self, x, hidden, w=None, scale=1.0):" in text
    text, _ = _apply(_spec('default = "None"\nplacement = {position = "last"}'), NET)
    assert "def act(self, x, hidden, scale=1.0, w=None):" in text
    assert "net.act(x, h)" in text
    text, left = _apply(_spec('placement = {before = "x"}'), NET)
    assert "def act(self, w, x, hidden, scale=1.0):" in text  # before the first
    # The call's `x` is no companion source: reported, never guessed.
    assert any("`x` is a parameter of `run`" in r for r in left), left


def test_an_unannotated_default_has_no_spaces() -> None:
    text, _ = _apply(_spec('default = "0"\nplacement = {after = "hidden"}'), NET)
    assert "hidden, w=0, scale=1.0" in text


def test_a_needed_import_comes_from_the_spec_else_the_reason() -> None:
    source = "import os\n\n" + NET
    with_import = _spec(
        'annotation = "Mapping[str, float] | None"\ndefault = "None"\n'
        'imports = {Mapping = "from collections.abc import Mapping"}\n'
        'placement = {after = "hidden"}'
    )
    text, _ = _apply(with_import, source)
    assert text.startswith("import os\nfrom collections.abc import Mapping\n")
    assert "w: Mapping[str, float] | None = None" in text
    without = _spec(
        'annotation = "Mapping[str, float]"\ndefault = "None"\nplacement = {after = "hidden"}'
    )
    out, _, _ = migrate_sources({"m.py": source.encode()}, without)
    assert "hidden, w=None, scale" in out["m.py"].decode()
    from esper_migrate.engine import Session

    session = Session(without)
    session.add_file("m.py", source.encode())
    (plan,) = [p for p in session.plans() if p.units]
    derivations = [e.derivation for e in plan.edits]
    assert any("`Mapping` not imported here" in d for d in derivations), derivations


def test_an_optional_parameter_before_a_required_one_is_reported() -> None:
    source = NET.replace("scale=1.0", "scale")
    _, left = _apply(_spec('default = "None"\nplacement = {after = "x"}'), source)
    assert any("would precede the required `hidden`" in r for r in left), left


def test_require_at_calls_makes_every_call_pass_it() -> None:
    spec = _spec(
        'default = "None"\nrequire_at_calls = true\nplacement = {after = "hidden"}\n'
        'sources = [{kind = "constant", value = "{}"}]'
    )
    text, _ = _apply(spec, NET)
    assert "net.act(x, h, w={})" in text


def test_a_positional_call_that_would_slide_gets_the_default_positionally() -> None:
    text, _ = _apply(
        _spec('default = "None"\nplacement = {after = "hidden"}'),
        NET.replace("(x, h)", "(x, h, 2.0)"),
    )
    assert "net.act(x, h, None, 2.0)" in text


AGENT = """\
class Net:
    def act(self, x, hidden):
        return x


class Agent:
    def __init__(self, net: Net, w):
        self.net = net
        self.w = w

    def step(self, x, h):
        return self.net.act(x, h)


def run(net: Net, x, h, w):
    return net.act(x, h)


def script(net: Net, x, h):
    return net.act(x, h)
"""


def test_value_sources_are_tried_in_order() -> None:
    spec = _spec(
        'placement = {after = "hidden"}\nsources = [{kind = "self"}, {kind = "parameter"}, '
        '{kind = "constant", value = "1.0"}]'
    )
    text, left = _apply(spec, AGENT)
    assert "self.net.act(x, h, w=self.w)" in text
    assert "def run(net: Net, x, h, w):\n    return net.act(x, h, w=w)" in text
    assert "def script(net: Net, x, h):\n    return net.act(x, h, w=1.0)" in text
    assert left == []


def test_without_a_source_that_applies_the_call_is_reported() -> None:
    _, left = _apply(_spec('placement = {after = "hidden"}\nsources = [{kind = "self"}]'), AGENT)
    assert any("never sets `self.w`" in r or "not in a method" in r for r in left), left


def test_a_constructor_target_stores_its_parameter() -> None:
    source = "class Agent:\n    def __init__(self, net):\n        self.net = net\n"
    spec = _spec(
        'default = "None"\nstore_on_self = true\nplacement = {after = "net"}',
        '[[parameters.targets]]\nname = "Agent"\nmethods = ["__init__"]\n',
    )
    text, _ = _apply(spec, source)
    assert text == (
        "class Agent:\n    def __init__(self, net, w=None):\n"
        "        self.net = net\n        self.w = w\n"
    )


PROTOCOL = """\
from typing import Protocol


class Policy(Protocol):
    def act(self, x, hidden): ...

    def value(self, x): ...


class Full:
    def act(self, x, hidden): ...

    def value(self, x): ...


class OneNameOnly:
    def value(self, y, z): ...
"""


def test_protocol_implementers_are_found_by_every_member() -> None:
    spec = _spec(
        'default = "None"\nplacement = {after = "hidden"}',
        '[[parameters.targets]]\nname = "Policy"\nkind = "protocol"\nmethods = ["act", "value"]\n',
    )
    text, _ = _apply(spec, PROTOCOL)
    assert text.count("def value(self, x, w=None)") == 2  # the protocol and Full
    assert "def value(self, y, z): ..." in text  # a look-alike by name is left alone


FORBID = """
[[forbidden_calls]]
callee = "get_value"
allowed_in = ["tests/*"]
allowed_functions = ["get_value", "*probe*"]
reason = "debug only"
"""


def test_forbidden_calls_are_reported_where_not_allowed(tmp_path: object) -> None:
    from pathlib import Path

    from esper_migrate.lint.em007_forbidden_call import ForbiddenCall, allowed_path

    spec = _spec(extra=FORBID)
    rule = spec.forbidden_calls[0]
    assert allowed_path(rule, "tests/test_x.py") and allowed_path(rule, "./tests/a.py")
    assert not allowed_path(rule, "src/train.py")
    source = (
        "def train(net):\n    return net.get_value(1)\n\n"
        "def get_value(net):\n    return net.get_value(2)\n\n"
        "def value_probe(net):\n    return net.get_value(3)\n"
    )
    from esper_migrate.engine import FilePlan
    from esper_migrate.index import Index
    from esper_migrate.lint import CheckContext

    tree = ast.parse(source)
    ctx = CheckContext(
        "src/train.py", source, tree, spec, Index(spec=spec), FilePlan("src/train.py")
    )
    found = ForbiddenCall().lint(ctx)
    assert [(f.line, f.code, f.unfixable_reason) for f in found] == [(2, "EM007", "debug only")]
    ctx_test = CheckContext(
        "tests/t.py", source, tree, spec, Index(spec=spec), FilePlan("tests/t.py")
    )
    assert ForbiddenCall().lint(ctx_test) == []
    assert isinstance(tmp_path, Path)


def test_the_builtin_spec_forbids_get_value_in_training_code_only(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    bundle = (
        "class LSTMPolicyBundle:\n"
        "    def get_value(self, features, blueprint_indices, hidden=None):\n"
        "        return features\n\n\n"
    )
    (tmp_path / "train.py").write_text(
        bundle + "def bootstrap(b: LSTMPolicyBundle, f, blueprint_indices):\n"
        "    return b.get_value(f, blueprint_indices)\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_value.py").write_text(
        "from train import LSTMPolicyBundle\n\n\n"
        "def test_value(f, blueprint_indices):\n"
        "    assert LSTMPolicyBundle().get_value(f, blueprint_indices) is f\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "esper_migrate", "check", "--no-cache", "--format", "json", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)
    rows = rows if isinstance(rows, list) else rows["findings"]
    assert [(r["path"], r["line"], r["code"]) for r in rows] == [("train.py", 7, "EM007")]
    assert "DEBUG ONLY" in rows[0]["unfixable_reason"]


LOSSES = """\
def masked_entropy(logits, weights=None):
    return sum(logits)


def policy_loss(logits, advantages, clip=0.2):
    return masked_entropy(logits) * clip + sum(advantages)


def total(logits, advantages, availability_masks=None):
    return policy_loss(logits, advantages)


def other(logits):
    return policy_loss(logits, [1.0], 0.1)
"""

FUNCTIONS = """\
[[parameters.targets]]
name = "policy_loss"
kind = "function"

[[parameters.targets]]
name = "masked_entropy"
kind = "function"
"""


def test_module_level_functions_gain_the_parameter_and_their_calls_pass_it() -> None:
    spec = _spec(
        'default = "None"\nrequire_at_calls = true\nplacement = {position = "last"}\n'
        'sources = [{kind = "parameter"}, {kind = "constant", value = "None"}]',
        FUNCTIONS,
    )
    out, left_units, _ = migrate_sources(
        {"losses.py": LOSSES.replace("availability_masks", "w").encode()}, spec
    )
    assert left_units == []
    assert out["losses.py"].decode() == (
        "def masked_entropy(logits, weights=None, w=None):\n    return sum(logits)\n\n\n"
        "def policy_loss(logits, advantages, clip=0.2, w=None):\n"
        "    return masked_entropy(logits, w=w) * clip + sum(advantages)\n\n\n"
        "def total(logits, advantages, w=None):\n"
        "    return policy_loss(logits, advantages, w=w)\n\n\n"
        "def other(logits):\n    return policy_loss(logits, [1.0], 0.1, w=None)\n"
    )


def test_a_definition_that_cannot_take_it_keeps_its_pass_on_calls() -> None:
    spec = _spec(
        'default = "None"\nrequire_at_calls = true\nplacement = {after = "logits"}\n'
        'sources = [{kind = "parameter"}]',
        FUNCTIONS,
    )
    text, left = _apply(spec, LOSSES.replace("availability_masks", "w"))
    # policy_loss cannot take an optional `w` before the required `advantages`: its unit
    # (with the pass-on call to masked_entropy inside it) is reported, nothing of it written.
    assert "def policy_loss(logits, advantages, clip=0.2):" in text
    assert "return masked_entropy(logits) * clip" in text
    assert any("would precede the required `advantages`" in r for r in left), left


def test_placement_per_target_and_per_method() -> None:
    source = (
        "class Net:\n    def act(self, x, hidden, scale=1.0): ...\n\n"
        "    def value(self, x, hidden=None): ...\n\n\n"
        "class Head:\n    def act(self, x, hidden=None): ...\n\n\n"
        "def run(net: Net, head: Head, x, h):\n"
        "    return net.act(x, h, 2.0), net.value(x, h), head.act(x, h)\n"
    )
    spec = _spec(
        'default = "None"\nplacement = {index = 0}',
        '[[parameters.targets]]\nname = "Net"\nmethods = ["act", "value"]\n'
        'placement = {after = "hidden"}\nmethod_placement = {value = {position = "last"}}\n'
        '[[parameters.targets]]\nname = "Head"\nmethods = ["act"]\n',
    )
    text, left = _apply(spec, source)
    assert left == []
    assert "def act(self, x, hidden, w=None, scale=1.0): ..." in text  # the target's
    assert "def value(self, x, hidden=None, w=None): ..." in text  # the method's
    assert "def act(self, x, w=None, hidden=None): ..." in text  # the parameter's (index 0)
    # Each call keeps its meaning under its own definition's placement.
    assert "net.act(x, h, None, 2.0), net.value(x, h), head.act(x, None, h)" in text

"""What each format-2 field does to the code apply writes and check reports."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest

from esper_migrate.engine import migrate_sources
from esper_migrate.index import method_info
from esper_migrate.plan.calls import bind
from esper_migrate.spec import MigrationSpec, parse_spec


def _spec_text(param: str = "", targets: str = "", extra: str = "") -> str:
    targets = targets or '[[parameters.targets]]\nname = "Net"\nmethods = ["act"]\n'
    return f'version = 2\n{extra}\n[[parameters]]\nname = "w"\n{param}\n{targets}'


def _spec(param: str = "", targets: str = "", extra: str = "") -> MigrationSpec:
    return parse_spec(_spec_text(param, targets, extra), "test.toml")


def _check(root: Path, spec_text: str) -> list[dict[str, object]]:
    """The findings of ``check`` (JSON rows) on ``root`` with the spec ``spec_text``."""
    from esper_migrate.check import CheckOptions, run_check
    from esper_migrate.formats import OutputFormat

    spec = root.parent / f"{root.name}-spec.toml"
    spec.write_text(spec_text)
    out, err = io.StringIO(), io.StringIO()
    options = CheckOptions(paths=(root,), fmt=OutputFormat.JSON, spec=spec, use_cache=False)
    run_check(options, out=out, err=err)
    rows = json.loads(out.getvalue())
    return list(rows if isinstance(rows, list) else rows["findings"])


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


FIRST = '''\
class Net:
    def act(self, x, hidden=None):
        """Act.

        Args:
            x: The input.
            hidden: The state.
        """
        return self.value(x, hidden)

    def value(
        self,
        x,
        hidden=None,
    ):
        return x


class Sub(Net):
    def act(self, x, hidden=None):
        return super().act(x, hidden)


def run(net: Net, x, h, w):
    net.act(x)
    net.act(x, h)
    net.act(x=x, hidden=h)
    return net.value(
        x,
        h,
    )
'''


@pytest.mark.parametrize("placement", ['position = "first"', 'before = "x"'])
def test_first_goes_after_self_and_every_positional_call_passes_it_first(placement: str) -> None:
    spec = _spec(
        f'docstring = "The weight."\nplacement = {{{placement}}}\n'
        'sources = [{kind = "parameter"}]',
        '[[parameters.targets]]\nname = "Net"\nmethods = ["act", "value"]\n',
    )
    text, left = _apply(spec, FIRST)
    assert left == []
    assert "    def act(self, w, x, hidden=None):" in text
    assert "            w: The weight.\n            x: The input.\n" in text  # before x's entry
    assert "        return self.value(w, x, hidden)" in text  # the method passes its own on
    assert (
        "    def value(\n        self,\n        w,\n        x,\n        hidden=None,\n    ):"
        in text
    )
    assert "        return super().act(w, x, hidden)" in text  # the subclass delegates
    assert "    net.act(w, x)\n    net.act(w, x, h)\n    net.act(w=w, x=x, hidden=h)\n" in text
    assert "net.value(\n        w,\n        x,\n        h,\n    )" in text
    again, left = _apply(spec, text)
    assert again == text and left == []
    tree = ast.parse(text)
    defs = {
        n.name: method_info(n)["params"]
        for n in tree.body[0].body
        if isinstance(n, ast.FunctionDef)
    }
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Attribute) and call.func.attr in defs:
            assert bind(defs[call.func.attr], call) is not None, ast.unparse(call)


LOSS = """\
def loss(a, b=2):
    return a


def run(x, w):
    return loss(x), loss(x, 3), loss(a=x), loss(w, x)
"""


def test_first_of_a_function_never_guesses_a_call_that_binds_both_signatures() -> None:
    spec = _spec(
        'placement = {position = "first"}\nsources = [{kind = "parameter"}]',
        '[[parameters.targets]]\nname = "loss"\nkind = "function"\n',
    )
    text, left = _apply(spec, LOSS)
    assert "def loss(w, a, b=2):" in text
    # `loss(x, 3)` binds both (w=x, a=3): nothing says which was meant. `loss(w, x)` passes
    # the parameter's own name in the new slot: migrated already.
    assert "return loss(w, x), loss(x, 3), loss(w=w, a=x), loss(w, x)" in text
    assert len(left) == 1 and "nothing says whether `x`" in left[0], left
    text, left = _apply(
        _spec(
            'default = "None"\nplacement = {position = "first"}',
            '[[parameters.targets]]\nname = "loss"\nkind = "function"\n',
        ),
        LOSS,
    )
    assert "def loss(a, b=2):" in text  # an optional one cannot precede the required `a`
    assert any("an optional `w` first would precede the required `a`" in r for r in left)


KWONLY = """\
class Net:
    def act(self, x, hidden=None):
        return x

    def value(self, x, *args, scale=1.0, **kwargs):
        return x

    def step(
        self,
        x,
        *,
        scale=1.0,
    ):
        return self.act(x)


def run(net: Net, x, w, extra):
    net.act(x, None)
    net.value(x, 1, 2, scale=2.0)
    net.value(x, **extra)
    return net.step(x, scale=1.0)
"""


def test_keyword_only_adds_a_star_or_joins_the_keyword_only_parameters() -> None:
    spec = _spec(
        'placement = {keyword_only = true}\nsources = [{kind = "parameter"}]',
        '[[parameters.targets]]\nname = "Net"\nmethods = ["act", "value", "step"]\n',
    )
    text, left = _apply(spec, KWONLY)
    assert left == []
    assert "def act(self, x, hidden=None, *, w):" in text  # a required one after defaults
    assert "def value(self, x, *args, scale=1.0, w, **kwargs):" in text
    assert "        x,\n        *,\n        scale=1.0,\n        w,\n    ):" in text
    assert "        return self.act(x, w=w)" in text
    assert "net.act(x, None, w=w)" in text
    assert "net.value(x, 1, 2, scale=2.0, w=w)" in text
    assert "net.value(x, **extra)" in text  # **extra may carry it: left alone
    assert "return net.step(x, scale=1.0, w=w)" in text
    again, _ = _apply(spec, text)
    assert again == text


def test_keyword_only_first_and_after_a_keyword_only_parameter() -> None:
    targets = '[[parameters.targets]]\nname = "Net"\nmethods = ["value", "step"]\n'
    first = _spec(
        'default = "None"\nplacement = {keyword_only = true, position = "first"}', targets
    )
    text, _ = _apply(first, KWONLY)
    assert "def value(self, x, *args, w=None, scale=1.0, **kwargs):" in text
    assert "        *,\n        w=None,\n        scale=1.0,\n" in text
    after = _spec(
        'placement = {keyword_only = true, after = "scale"}\nsources = '
        '[{kind = "constant", value = "0"}]',
        targets,
    )
    text, _ = _apply(after, KWONLY)
    assert "def value(self, x, *args, scale=1.0, w, **kwargs):" in text
    assert "net.value(x, 1, 2, scale=2.0, w=0)" in text


MODULES = {
    "pkg/__init__.py": b"",
    "pkg/losses.py": b"def policy_loss(logp, adv):\n    return logp * adv\n",
    "pkg/other.py": b"def helper(x):\n    return x\n",
    "pkg/train.py": b"""\
import pkg.losses
import pkg.losses as L
import pkg.other as other
from pkg import losses
from pkg.losses import policy_loss as pl

from . import losses as rel


def step(logp, adv, w):
    a = losses.policy_loss(logp, adv)
    b = L.policy_loss(logp, adv)
    c = pkg.losses.policy_loss(logp, adv)
    d = rel.policy_loss(logp, adv)
    e = pl(logp, adv)
    f = other.policy_loss(logp, adv)
    return a, b, c, d, e, f
""",
}


def test_calls_through_a_module_attribute_are_resolved_by_the_imports() -> None:
    spec = _spec(
        'placement = {position = "last"}\nsources = [{kind = "parameter"}]',
        '[[parameters.targets]]\nname = "policy_loss"\nkind = "function"\n',
    )
    out, left, errors = migrate_sources(MODULES, spec)
    assert errors == {} and left == []
    assert out["pkg/losses.py"].startswith(b"def policy_loss(logp, adv, w):")
    train = out["pkg/train.py"].decode()
    for callee in ("losses", "L", "pkg.losses", "rel"):
        assert f"{callee}.policy_loss(logp, adv, w=w)" in train
    assert "e = pl(logp, adv, w=w)" in train
    # `pkg.other` defines no `policy_loss`: never matched by the attribute's name alone.
    assert "f = other.policy_loss(logp, adv)\n" in train


def test_check_reports_the_module_attribute_calls_apply_fixes(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for rel, data in MODULES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data.replace(b"def step(logp, adv, w)", b"def step(logp, adv)"))
    lines = _check(
        root,
        _spec_text(
            'placement = {keyword_only = true}\nsources = [{kind = "constant", value = "1.0"}]',
            '[[parameters.targets]]\nname = "policy_loss"\nkind = "function"\n',
        ),
    )
    em001 = [r for r in lines if r["code"] == "EM001"]
    # a, b, c, d, e; never `other.policy_loss`
    assert [r["line"] for r in em001] == [11, 12, 13, 14, 15], lines
    assert all(r["fix"] == "pass `w=1.0` as the last argument" for r in em001), em001
    assert any(r["code"] == "EM002" and "losses.py" in str(r["path"]) for r in lines), lines


DRIFT = """\
from typing import Protocol


class Policy(Protocol):
    def act(self, x, *, w): ...


class Good:
    def act(self, x, *, w): ...


class Bad:
    def act(self, x, w): ...
"""


def test_signature_drift_expects_a_keyword_only_parameter_where_the_spec_puts_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "m.py").write_text(DRIFT)
    lines = _check(
        root,
        _spec_text(
            "placement = {keyword_only = true}",
            '[[parameters.targets]]\nname = "Policy"\nkind = "protocol"\nmethods = ["act"]\n',
        ),
    )
    drift = [r for r in lines if r["code"] == "EM003"]
    assert len(drift) == 1 and "Bad.act" in str(drift[0]["message"]), lines


COMPANION = """\
def masked(logits, clip=0.2):
    return logits


def loss(logits, adv):
    return masked(logits) + adv


def run(signals):
    states, bp = producer(signals)
    return loss(states, 1.0), loss(1, 2)
"""


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        (
            'position = "first"',
            "def masked(w, logits, clip=0.2):\n    return logits\n\n\n"
            "def loss(w, logits, adv):\n    return masked(w, logits) + adv\n\n\n"
            "def run(signals):\n    states, bp = producer(signals)\n"
            # No companion derives from the literal `1`: the next source (the constant) applies.
            "    return loss(bp, states, 1.0), loss(None, 1, 2)\n",
        ),
        (
            'keyword_only = true, after = "logits"',
            "def masked(logits, clip=0.2, *, w):\n    return logits\n\n\n"
            "def loss(logits, adv, *, w):\n    return masked(logits, w=w) + adv\n\n\n"
            "def run(signals):\n    states, bp = producer(signals)\n"
            "    return loss(states, 1.0, w=bp), loss(1, 2, w=None)\n",
        ),
    ],
)
def test_function_targets_pass_the_companion_of_their_neighbour(
    placement: str, expected: str
) -> None:
    spec = _spec(
        f"placement = {{{placement}}}\n"
        'sources = [{kind = "companion"}, {kind = "constant", value = "None"}]\n'
        '[[parameters.producers]]\nname = "producer"',
        '[[parameters.targets]]\nname = "loss"\nkind = "function"\n'
        '[[parameters.targets]]\nname = "masked"\nkind = "function"\n',
    )
    text, left = _apply(spec, COMPANION)
    assert (text, left) == (expected, [])


def test_keyword_only_before_kwargs_past_positional_only_and_in_an_empty_signature() -> None:
    source = (
        "def loss(a, /, b=2, **kw):\n    return a\n\n\n"
        "def act():\n    return 1\n\n\n"
        "def run(x, w):\n    return loss(3, 4), loss(x, **{}), act()\n"
    )
    spec = _spec(
        'placement = {keyword_only = true}\nsources = [{kind = "parameter"}]',
        '[[parameters.targets]]\nname = "loss"\nkind = "function"\n'
        '[[parameters.targets]]\nname = "act"\nkind = "function"\n',
    )
    text, left = _apply(spec, source)
    assert left == []
    assert "def loss(a, /, b=2, *, w, **kw):" in text
    assert "def act(*, w):" in text
    assert "return loss(3, 4, w=w), loss(x, **{}), act(w=w)" in text


@pytest.mark.parametrize("placement", ['position = "first"', "keyword_only = true"])
def test_check_on_the_migrated_tree_reports_exactly_what_apply_left(
    placement: str, tmp_path: Path
) -> None:
    from esper_migrate.engine import run_apply

    root = tmp_path / "tree"
    root.mkdir()
    (root / "m.py").write_text(LOSS.replace("def run(x, w):", "def run(x):"))
    text = _spec_text(
        f'placement = {{{placement}}}\nsources = [{{kind = "parameter"}}]',
        '[[parameters.targets]]\nname = "loss"\nkind = "function"\n',
    )
    result = run_apply([root], parse_spec(text))
    for r in result.changed:
        Path(r.path).write_bytes(r.new)
    left = sorted((u.line, u.col + 1, str(u.code)) for u in result.unresolved)
    assert left  # `run` has no `w` to pass on: its calls are reported
    found = sorted(
        (int(str(r["line"])), int(str(r["col"])), str(r["code"])) for r in _check(root, text)
    )
    assert found == left


DOCUMENTED = '''\
class Net:
    def act(self, x, hidden=None, *, scale=1.0):
        """Act.

        Args:
            x: The input.
            hidden: The state.
            scale: The factor.
        """
        return x
'''


@pytest.mark.parametrize(
    ("placement", "entries"),
    [
        ('keyword_only = true, position = "first"', ["x", "hidden", "w", "scale"]),
        ("keyword_only = true", ["x", "hidden", "scale", "w"]),
        ('after = "hidden"', ["x", "hidden", "w", "scale"]),
    ],
)
def test_the_docstring_entry_goes_where_the_parameter_goes(
    placement: str, entries: list[str]
) -> None:
    spec = _spec(f'default = "None"\ndocstring = "The weight."\nplacement = {{{placement}}}')
    text, left = _apply(spec, DOCUMENTED)
    assert left == []
    documented = [ln.strip().split(":")[0] for ln in text.splitlines() if ln.startswith(" " * 12)]
    assert documented == entries


def test_a_package_that_re_exports_the_function_is_followed() -> None:
    sources = {
        "src/pkg/__init__.py": b"from .losses import policy_loss\n",
        "src/pkg/losses.py": b"def policy_loss(logp, adv):\n    return logp * adv\n",
        "src/pkg/sub/__init__.py": b"",
        "src/pkg/sub/run.py": b"""\
import pkg
import pkg.sub
from .. import losses


def step(logp, adv, w):
    return pkg.policy_loss(logp, adv), losses.policy_loss(logp, adv), pkg.sub.policy_loss(adv)
""",
    }
    spec = _spec(
        'placement = {position = "first"}\nsources = [{kind = "parameter"}]',
        '[[parameters.targets]]\nname = "policy_loss"\nkind = "function"\n',
    )
    out, left, errors = migrate_sources(sources, spec)
    assert errors == {} and left == []
    # `pkg/__init__.py` re-exports it; `pkg.sub` neither defines nor re-exports it.
    assert (
        out["src/pkg/sub/run.py"]
        .decode()
        .endswith(
            "return pkg.policy_loss(w, logp, adv), losses.policy_loss(w, logp, adv), "
            "pkg.sub.policy_loss(adv)\n"
        )
    )

"""Hypothesis: random valid Python never crashes the engine, the output always parses, a file
without any spec name is never changed, a second run changes nothing, every planned edit is one
finding with the same fix, and check on the migrated program reports what apply left."""

from __future__ import annotations

import ast
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper_migrate.check import file_findings
from esper_migrate.engine import Session, migrate_sources
from esper_migrate.records import Finding
from esper_migrate.rule import all_rules
from esper_migrate.spec import load_spec

SPEC = load_spec()

TARGET_NAMES = [
    "state", "states_batch", "obs", "features", "_bp_indices", "_", "bp", "net", "self",
    "agent", "buffer", "data", "transition", "hidden", "masks", "x",
]  # fmt: skip
PLAIN_NAMES = ["a", "b", "value", "item", "total", "cfg", "x", "y"]
TARGET_CALLEES = [
    "batch_obs_to_features", "FactoredRecurrentActorCritic", "TamiyoRolloutBuffer",
    "torch.randn", "normalize", "wrap",
]  # fmt: skip
TARGET_METHODS = ["get_action", "forward", "evaluate_actions", "get_value", "add", "detach"]
PLAIN_CALLEES = ["print", "len", "compute", "helper.run"]
PLAIN_METHODS = ["append", "update", "run"]


PREAMBLE = """\
import torch


class FactoredRecurrentActorCritic:
    def get_action(self, state, hidden=None, masks=None):
        return state

    def forward(self, state, hidden=None):
        return self.get_action(state, hidden)


def wrap(x):
    return batch_obs_to_features(x)


"""
#: Statements that give the engine something to derive.
FLOW = [
    "net = FactoredRecurrentActorCritic()",
    "states_batch, _bp_indices = batch_obs_to_features(x)",
    "obs, _ = wrap(x)",
    "state = torch.randn(2, 5, 50)",
    "features = normalize(states_batch)",
    "transition = {'state': states_batch[0].detach()}",
    "net.get_action(states_batch, hidden=None)",
    "net(state)",
    "net.forward(obs, masks)",
    "net.get_action(transition['state'])",
    "net.get_action(features, hidden, masks)",
]


def programs(
    names: list[str], callees: list[str], methods: list[str], flow: list[str] | None = None
) -> st.SearchStrategy[str]:
    name = st.sampled_from(names)

    def exprs() -> st.SearchStrategy[str]:
        atom = st.one_of(name, st.integers(0, 9).map(str), st.just('"state"'), st.just("None"))
        return st.recursive(
            atom,
            lambda inner: st.one_of(
                st.builds(
                    lambda f, a: f"{f}({', '.join(a)})",
                    st.sampled_from(callees),
                    st.lists(inner, max_size=3),
                ),
                st.builds(
                    lambda r, m, a, k: f"{r}.{m}({', '.join(a + k)})",
                    name,
                    st.sampled_from(methods),
                    st.lists(inner, max_size=3),
                    st.lists(
                        st.builds(
                            lambda n, v: f"{n}={v}",
                            name.filter(lambda n: n.isidentifier() and n not in ("self", "_")),
                            inner,
                        ),
                        max_size=2,
                        unique_by=lambda s: s.split("=")[0],
                    ),
                ),
                st.builds(lambda r, k: f"{r}[{k}]", inner, inner),
                st.builds(
                    lambda k, v: f"{{{k}: {v}}}", st.sampled_from(['"state"', '"obs"', "1"]), inner
                ),
                st.builds(lambda a: f"({a},)", inner),
            ),
            max_leaves=6,
        )

    simple = st.one_of(
        *([st.sampled_from(flow)] * 3 if flow else []),
        st.builds(lambda n, e: f"{n} = {e}", name, exprs()),
        st.builds(lambda a, b, e: f"{a}, {b} = {e}", name, name, exprs()),
        exprs(),
        st.just("pass"),
    )

    def block(depth: int) -> st.SearchStrategy[list[str]]:
        if depth == 0:
            return st.lists(simple, min_size=1, max_size=4)
        compound = st.one_of(
            st.builds(
                lambda n, p, b: [f"def {n}({', '.join(p)}):", *("    " + x for x in b)],
                st.sampled_from([*methods, "fn"]),
                st.lists(name.filter(lambda n: n != "_"), max_size=3, unique=True),
                block(depth - 1),
            ),
            st.builds(
                lambda n, b: [f"class {n}:", *("    " + x for x in b)],
                st.sampled_from(
                    ["FactoredRecurrentActorCritic", "PolicyBundle", "Thing"]
                    if "get_action" in methods
                    else ["Thing", "Other"]
                ),
                block(depth - 1),
            ),
            st.builds(
                lambda e, b: [f"with {e}:", *("    " + x for x in b)],
                st.sampled_from(["pytest.raises(TypeError)", "ctx()"]),
                block(depth - 1),
            ),
            st.builds(
                lambda n, e, b: [f"for {n} in {e}:", *("    " + x for x in b)],
                name.filter(lambda n: n != "self"),
                exprs(),
                block(depth - 1),
            ),
        )
        return st.lists(st.one_of(simple.map(lambda s: [s]), compound), min_size=1, max_size=4).map(
            lambda bs: [line for b in bs for line in b]
        )

    preamble = PREAMBLE if flow else ""
    return block(2).map(lambda lines: preamble + "\n".join(lines) + "\n")


def _valid(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


WITH_TARGETS = programs(TARGET_NAMES, TARGET_CALLEES, TARGET_METHODS, FLOW).filter(_valid)
WITHOUT_TARGETS = programs(PLAIN_NAMES, PLAIN_CALLEES, PLAIN_METHODS).filter(_valid)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(WITH_TARGETS, min_size=1, max_size=3))
def test_random_programs_never_crash_and_stay_valid_and_idempotent(sources: list[str]) -> None:
    files = {f"m{i}.py": s.encode() for i, s in enumerate(sources)}
    out, _, errors = migrate_sources(files, SPEC)
    assert not errors, errors
    for new in out.values():
        ast.parse(new)
    again, _, errors = migrate_sources(out, SPEC)
    assert not errors
    assert again == out


@FAST
@given(WITHOUT_TARGETS)
def test_files_without_a_spec_name_are_never_changed(source: str) -> None:
    assert not SPEC.prefilter.search(source)
    out, unresolved, errors = migrate_sources({"m.py": source.encode()}, SPEC)
    assert out == {"m.py": source.encode()}
    assert unresolved == [] and errors == {}


#: Codes apply plans (lint-only codes report what apply cannot express).
PLANNED = {str(r.CODE) for r in all_rules() if r.PLANS}


def _session(files: dict[str, bytes]) -> Session:
    session = Session(SPEC)
    for path, source in files.items():
        session.add_file(path, source)
    return session


def _check_findings(session: Session, path: str) -> list[Finding]:
    assert session.plan(path).error is None
    return file_findings(path, session.texts[path], session.trees[path], session.index, SPEC)


@FAST
@given(st.lists(WITH_TARGETS, min_size=1, max_size=3))
def test_every_planned_edit_is_exactly_one_finding_with_the_same_fix(sources: list[str]) -> None:
    """One truth: check's fixable findings are apply's planned units (one per root cause, its
    fix text rendered from its edits), and every edit belongs to exactly one of them."""
    session = _session({f"m{i}.py": s.encode() for i, s in enumerate(sources)})
    for path in session.candidates:
        plan = session.plan(path)
        resolved = [u for u in plan.units if u.resolved]
        planned = Counter((u.line, u.col + 1, str(u.code), u.fix) for u in resolved)
        fixed = Counter(
            (f.line, f.col, str(f.code), f.fix) for f in _check_findings(session, path) if f.fix
        )
        assert planned == fixed
        edits = [(e.kind, e.anchor, e.text) for u in plan.units for e in u.edits]
        assert len(edits) == len(set(edits)), "an edit planned by two units"


@FAST
@given(st.lists(WITH_TARGETS, min_size=1, max_size=3))
def test_check_on_the_migrated_program_reports_exactly_what_apply_left(sources: list[str]) -> None:
    files = {f"m{i}.py": s.encode() for i, s in enumerate(sources)}
    out, unresolved, errors = migrate_sources(files, SPEC)
    assert not errors
    session = _session(out)
    left = Counter(
        (f.path, str(f.code), f.message)
        for path in session.candidates
        for f in _check_findings(session, path)
        if str(f.code) in PLANNED
    )
    assert left == Counter((u.path, str(u.code), u.message) for u in unresolved)

"""Generate a realistic ~100k-line Python repository for the esper_migrate benchmarks.

    python bench/treegen.py DEST [--lines 100000] [--seed 0]

The tree holds the Phase 4 fixture codebase (tests/esper_migrate/fixtures/phase4/before)
copied into packages ``pkg_000/``, ``pkg_001/``, ... (one per 10k target lines; each copy's
``esper`` package is renamed ``esper_NNN`` with its imports, so every copy is a distinct,
importable package), among filler modules: dataclass configs, utilities, torch ``nn.Module``s
with their own ``forward`` (look-alikes), agents with an unrelated ``get_action``, telemetry
dicts with a ``"state"`` key, and tests for all of these. The output depends only on
``target_lines`` and ``seed``.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "esper_migrate"
    / "fixtures"
    / "phase4"
    / "before"
)
LINES_PER_COPY = 10_000

_NOUNS = [
    "signal", "batch", "window", "metric", "report", "sample", "episode", "reward", "gradient",
    "layer", "cache", "schedule", "budget", "token", "channel", "trace", "event", "feature",
    "shard", "checkpoint", "horizon", "bucket", "frame", "record", "profile", "queue",
]  # fmt: skip
_VERBS = [
    "compute", "update", "merge", "collect", "validate", "render", "normalise", "aggregate",
    "resolve", "load", "store", "emit", "summarise", "project", "split", "filter", "rank",
]  # fmt: skip
_AREAS = ["data", "eval", "infra", "models", "reporting", "scheduling", "serving", "tools"]
_TYPES = [("int", "0"), ("float", "0.0"), ("str", '""'), ("bool", "False")]


def _camel(*words: str) -> str:
    return "".join(w.capitalize() for w in words)


class _Writer:
    """Builds one filler module from randomly chosen, realistic blocks."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[str] = []
        self.needs_torch = False
        self.needs_dataclass = False
        self.needs_enum = False
        self.classes: list[tuple[str, str]] = []  # (kind, name) for the module's tests
        self._names: set[str] = set()

    def noun(self) -> str:
        return self.rng.choice(_NOUNS)

    def verb(self) -> str:
        return self.rng.choice(_VERBS)

    def unique(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self._names:
            n += 1
            candidate = f"{name}{n}"
        self._names.add(candidate)
        return candidate

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def dataclass_block(self) -> None:
        self.needs_dataclass = True
        name = self.unique(_camel(self.noun(), self.noun(), "Config"))
        self.emit("@dataclass(frozen=True)", f"class {name}:")
        self.emit(f'    """Settings for the {self.noun()} {self.verb()} step."""', "")
        fields = self.rng.sample(_NOUNS, self.rng.randint(3, 7))
        for field_name in fields:
            type_name, default = self.rng.choice(_TYPES)
            comment = f"  # {self.verb()}s the {self.noun()}" if self.rng.random() < 0.3 else ""
            self.emit(f"    {field_name}_value: {type_name} = {default}{comment}")
        self.emit("", "    def to_dict(self) -> dict[str, object]:")
        items = ", ".join(f'"{f}": self.{f}_value' for f in fields)
        self.emit(f"        return {{{items}}}", "")
        self.emit("    def validate(self) -> None:")
        self.emit("        for key, value in self.to_dict().items():")
        self.emit("            if value is None:")
        self.emit(f'                raise ValueError(f"{name}: {{key}} is unset")', "", "")
        self.classes.append(("config", name))

    def function_block(self) -> None:
        verb, noun = self.verb(), self.noun()
        name = self.unique(f"{verb}_{noun}s")
        arg = self.rng.choice(["items", "values", "rows", "entries"])
        self.emit(f"def {name}({arg}: list[float], threshold: float = 0.5) -> dict[str, float]:")
        self.emit(f'    """{verb.capitalize()} the {noun}s above ``threshold``.', "")
        self.emit(f"    Returns the count, the mean and the largest kept {noun}.", '    """')
        self.emit(f"    kept = [v for v in {arg} if v > threshold]")
        self.emit("    if not kept:", "        # Nothing passed the threshold: report zeros.")
        self.emit('        return {"count": 0.0, "mean": 0.0, "max": 0.0}')
        self.emit("    total = 0.0", "    for value in kept:")
        if self.rng.random() < 0.5:
            self.emit("        if value != value:  # NaN", "            continue")
        self.emit("        total += value")
        self.emit(
            '    return {"count": float(len(kept)), "mean": total / len(kept), "max": max(kept)}'
        )
        self.emit("", "")

    def parser_block(self) -> None:
        noun = self.unique(self.noun())
        self.emit(f"def parse_{noun}_line(line: str) -> tuple[str, int] | None:")
        self.emit(f'    """Parse ``name=count`` from a {noun} log line; None for comments."""')
        self.emit("    line = line.strip()")
        self.emit('    if not line or line.startswith("#"):', "        return None")
        self.emit('    name, _, count = line.partition("=")', "    try:")
        self.emit("        return name.strip(), int(count)", "    except ValueError:")
        self.emit(f'        raise ValueError(f"bad {noun} line: {{line!r}}") from None', "", "")

    def enum_block(self) -> None:
        self.needs_enum = True
        name = self.unique(_camel(self.noun(), "Kind"))
        self.emit(f"class {name}(Enum):")
        for i, member in enumerate(self.rng.sample(_VERBS, 4)):
            self.emit(f"    {member.upper()} = {i}")
        self.emit("", "")

    def module_block(self) -> None:
        self.needs_torch = True
        noun = self.noun()
        name = self.unique(
            _camel(noun, self.rng.choice(["Encoder", "Head", "Block", "Projector", "Mixer"]))
        )
        arg = self.rng.choice(["x", "inputs", "hidden_states", "features", "state"])
        self.emit(f"class {name}(nn.Module):")
        self.emit(f'    """Maps {noun} vectors to a fixed width."""', "")
        self.emit(
            "    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1) -> None:",
            "        super().__init__()",
            "        self.proj = nn.Linear(in_dim, out_dim)",
            "        self.norm = nn.LayerNorm(out_dim)",
            "        self.dropout = nn.Dropout(dropout)",
        )
        self.emit("")
        self.emit(f"    def forward(self, {arg}: torch.Tensor) -> torch.Tensor:")
        if self.rng.random() < 0.5:
            self.emit('        """Project, normalise and drop out; keeps the leading dims."""')
        self.emit(f"        out = self.proj({arg})", "        out = self.norm(torch.relu(out))")
        self.emit("        return self.dropout(out)", "", "")
        self.classes.append(("module", name))

    def agent_block(self) -> None:
        self.needs_torch = True
        name = self.unique(
            _camel(self.rng.choice(["EpsilonGreedy", "Softmax", "Ucb"]), self.noun(), "Agent")
        )
        self.emit(f"class {name}:")
        self.emit('    """A bandit baseline: nothing to do with the recurrent policy."""', "")
        self.emit("    def __init__(self, num_arms: int, epsilon: float = 0.1) -> None:")
        self.emit("        self.num_arms = num_arms", "        self.epsilon = epsilon")
        self.emit("        self.counts = torch.zeros(num_arms)", "")
        self.emit("    def get_action(self, q_values: torch.Tensor) -> int:")
        self.emit("        if torch.rand(()) < self.epsilon:")
        self.emit("            return int(torch.randint(0, self.num_arms, ()))")
        self.emit("        return int(q_values.argmax())", "")
        self.emit("    def evaluate_actions(self, actions: list[int]) -> float:")
        self.emit('        """Share of the given actions that were greedy under the counts."""')
        self.emit("        best = int(self.counts.argmax())")
        self.emit("        return sum(a == best for a in actions) / max(len(actions), 1)", "", "")
        self.classes.append(("agent", name))

    def telemetry_block(self) -> None:
        noun = self.noun()
        name = self.unique(f"{noun}_status")
        self.emit(f"def {name}(name: str, phase: str, step: int) -> dict[str, object]:")
        self.emit(f'    # "state" here is the lifecycle phase of the {noun}, not a tensor.')
        self.emit('    return {"name": name, "state": phase, "step": step}', "", "")

    def build(self, target: int) -> str:
        blocks: list[tuple[Callable[[], None], float]] = [
            (self.dataclass_block, 3),
            (self.function_block, 4),
            (self.parser_block, 2),
            (self.enum_block, 1),
            (self.telemetry_block, 1),
        ]
        if self.rng.random() < 0.35:  # an ML module: nn.Modules and agents
            blocks += [(self.module_block, 4), (self.agent_block, 1)]
        funcs, weights = zip(*blocks, strict=True)
        while len(self.lines) < target:
            self.rng.choices(funcs, weights=weights)[0]()
        header = [f'"""{self.verb().capitalize()} and {self.verb()} {self.noun()}s."""', ""]
        header.append("from __future__ import annotations")
        header.append("")
        if self.needs_dataclass:
            header.append("from dataclasses import dataclass")
        if self.needs_enum:
            header.append("from enum import Enum")
        if self.needs_torch:
            header += ["", "import torch", "from torch import nn"]
        return "\n".join([*header, "", "", *self.lines]).rstrip() + "\n"


def _test_module(module: str, classes: list[tuple[str, str]], rng: random.Random) -> str:
    lines = [f'"""Tests for {module}."""', "", "import torch", "", f"from {module} import *", ""]
    for kind, name in classes:
        lines.append("")
        lines.append(f"def test_{name.lower()}():")
        if kind == "module":
            dim = rng.choice([8, 16, 32])
            lines += [f"    model = {name}({dim}, 4)", f"    x = torch.randn(2, {dim})"]
            lines += ["    out = model(x)", "    assert out.shape == (2, 4)"]
        elif kind == "agent":
            lines += [f"    agent = {name}(num_arms=3, epsilon=0.0)"]
            lines += ["    state = torch.tensor([0.1, 0.9, 0.3])"]
            lines += ["    assert agent.get_action(state) == 1"]
        else:
            lines += [f"    cfg = {name}()", "    cfg.validate()", "    assert cfg.to_dict()"]
    return "\n".join(lines) + "\n"


def _copy_fixture(dest: Path, index: int) -> int:
    """Copy the fixture as package ``esper_NNN`` under ``dest``; returns its line count."""
    package = f"esper_{index:03d}"
    lines = 0
    for src in sorted(FIXTURE.rglob("*")):
        if not src.is_file() or "__pycache__" in src.parts or src.suffix == ".pyc":
            continue
        rel = src.relative_to(FIXTURE).as_posix().replace("src/esper/", f"src/{package}/", 1)
        text = src.read_text(encoding="utf-8")
        if src.suffix == ".py":
            text = re.sub(r"\b(from|import) esper\b", rf"\1 {package}", text)
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        if src.suffix == ".py":
            lines += text.count("\n")
    return lines


def generate_tree(dest: Path, target_lines: int = 100_000, seed: int = 0) -> Path:
    """Write the tree into ``dest`` (which must not exist or be empty) and return ``dest``."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"generate_tree: {dest} exists and is not empty")
    if not FIXTURE.is_dir():
        raise FileNotFoundError(f"generate_tree: fixture codebase missing at {FIXTURE}")
    if target_lines < 1:
        raise ValueError(f"generate_tree: target_lines must be positive, got {target_lines}")
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    total = 0
    for index in range(max(1, target_lines // LINES_PER_COPY)):
        total += _copy_fixture(dest / f"pkg_{index:03d}", index)
    n = 0
    while total < target_lines:
        area = _AREAS[n % len(_AREAS)]
        module = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}_{n:04d}"
        writer = _Writer(rng)
        text = writer.build(target=rng.randint(120, 360))
        package = dest / "services" / area
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").touch()
        (package / f"{module}.py").write_text(text, encoding="utf-8")
        total += text.count("\n")
        if writer.classes and total < target_lines:
            tests = dest / "tests" / area
            tests.mkdir(parents=True, exist_ok=True)
            test_text = _test_module(f"services.{area}.{module}", writer.classes, rng)
            (tests / f"test_{module}.py").write_text(test_text, encoding="utf-8")
            total += test_text.count("\n")
        n += 1
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory to create (must not exist or be empty)")
    parser.add_argument("--lines", type=int, default=100_000, help="target total lines")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the filler")
    args = parser.parse_args(argv)
    try:
        tree = generate_tree(args.dest, target_lines=args.lines, seed=args.seed)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    files = list(tree.rglob("*.py"))
    lines = sum(f.read_text(encoding="utf-8").count("\n") for f in files)
    print(f"{tree}: {len(files)} Python files, {lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())

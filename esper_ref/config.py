"""Every hyperparameter of a training run, in one dataclass (CleanRL style).

``TrainConfig`` is what a checkpoint and ``config.json`` record. ``from_dict`` (and
``from_toml``) type-check every value, so a config file with a typo or a wrong type fails with
the field's name instead of deep inside training; the CLI builds one ``--option`` per field from
``field_help()``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

BootstrapMode = Literal["greedy", "expected"]

#: Per-head entropy weights of the original system; multiplied by ``TrainConfig.ent_coef``.
DEFAULT_HEAD_ENT_COEFS: dict[str, float] = {
    "op": 1.0,
    "slot": 1.0,
    "blueprint": 1.3,
    "style": 1.2,
    "tempo": 1.3,
    "alpha_target": 1.2,
    "alpha_speed": 1.2,
    "alpha_curve": 1.2,
}


@dataclass
class TrainConfig:
    # Run
    seed: int = 0
    """Seed of everything: the policy's initial weights, sampling and the training envs."""
    device: str = "cpu"
    """torch device to train on (``cpu``, ``cuda``, ``cuda:1``)."""
    torch_threads: int | None = 1
    """CPU threads for torch (``torch.set_num_threads``); one is fastest for these small
    networks. ``None`` leaves torch's setting alone."""
    total_steps: int = 500_000
    """Environment steps (summed over all envs) to train for."""
    # Environment
    num_envs: int = 16
    """Environments stepped together (one batch per step)."""
    num_slots: int = 3
    """Seed slots of the host network in the built-in env."""
    episode_length: int = 25
    """Epochs per episode before the time limit truncates it."""
    # Policy size
    feature_dim: int = 128
    """Width of the feature layer in front of the LSTM."""
    lstm_hidden_dim: int = 128
    """LSTM state width."""
    head_hidden_dim: int = 128
    """Hidden width of the actor (all 8 heads share it)."""
    value_hidden_dim: int = 128
    """Hidden width of the critic that gives Q(s, op)."""
    # Rollout
    num_steps: int = 50
    """Steps per env per update (one rollout); the buffer holds ``num_envs x num_steps``."""
    seq_len: int | None = None
    """Longest recurrent sequence in the update; ``None`` = whole episodes within a rollout."""
    bootstrap: BootstrapMode = "greedy"
    """Value of a truncated episode's post-step state: ``greedy`` = Q(s', argmax op) through
    ``get_action(deterministic=True)`` (the audit's choice); ``expected`` = sum over allowed ops
    of pi(op|s') Q(s', op)."""
    use_blueprint_indices: bool = True
    """``False`` replaces every blueprint index by -1 before the policy sees it (ablation)."""
    obs_norm: bool = True
    """Normalise observations by their running mean and variance (of every rank's envs)."""
    obs_norm_every: int = 1
    """Env steps between updates of the normaliser's statistics: each step is normalised by
    the steps of the blocks before its own. 1 (every step) costs one process nothing; with
    several ranks each update is an all-reduce, so on a slow interconnect fold in blocks
    (10 keeps the statistics at most 10 steps behind for 10x fewer synchronisations)."""
    # PPO
    learning_rate: float = 1.5e-3
    """Adam's learning rate at the first update. With ``update_epochs`` x ``num_minibatches``
    it sets how far one update moves the policy: 2.5e-3 with 8 x 8 steps overshot the KL
    target in 90% of updates (``bench/kl_stop.py``)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over ``total_steps``."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    update_epochs: int = 4
    """Passes over each rollout in the update."""
    num_minibatches: int = 4
    """Minibatches per epoch, formed by env (an env's whole rollout stays in one minibatch);
    at most one per env."""
    clip_coef: float = 0.2
    """PPO's ratio clip."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values."""
    vf_clip_coef: float = 10.0
    """How far the value may move from the rollout's value before the clipped loss applies."""
    norm_adv: bool = True
    """Normalise advantages over the rollout's real steps."""
    q_baseline_for_heads: bool = True
    """Heads other than ``op`` use Q(s, executed op) as their baseline (the op head uses
    V(s)); ``False`` = every head uses the GAE advantage with baseline V(s)."""
    ent_coef: float = 0.003
    """Entropy bonus, times each head's weight in ``head_ent_coefs``."""
    head_ent_coefs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_HEAD_ENT_COEFS))
    """Per-head entropy weights (``op=1.0,slot=1.0,...``; heads left out keep theirs)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    target_kl: float | None = 0.05
    """Stop the update before the optimiser step at which the approximate KL of the joint
    action (all heads) exceeds this; ``None`` = never."""
    # Evaluation and outputs (changing these never changes the training itself)
    eval_every: int = 10
    """Updates between greedy evaluations on separate seeded envs (``eval.csv``, ``best.pt``);
    0 = none."""
    eval_episodes: int = 128
    """Episodes per evaluation during training."""
    final_eval_episodes: int = 512
    """Episodes (at least) of the greedy evaluation in the end-of-run summary; more are run
    until its 95% interval is within ±0.1, up to 4 times as many."""
    checkpoint_every: int = 10
    """Updates between checkpoints (a final one is always written)."""
    log_every: int = 10
    """Updates between plain log lines when the output is not a terminal."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)

    def validate(self) -> TrainConfig:
        """Check every value; raises ``ValueError`` naming each bad field."""
        problems = []
        for f in dataclasses.fields(self):
            try:
                _check_type(f.name, getattr(self, f.name))
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("eval_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.seed < 2**63:
            problems.append(f"seed={self.seed} must be in [0, 2**63 - 1]")
        if self.torch_threads is not None and self.torch_threads < 1:
            problems.append(f"torch_threads={self.torch_threads} must be >= 1 or None")
        for name in ("clip_coef", "vf_clip_coef", "max_grad_norm"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} must be > 0")
        for name in ("ent_coef", "vf_coef"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.target_kl is not None and self.target_kl <= 0:
            problems.append(f"target_kl={self.target_kl} must be > 0 or None")
        unknown_heads = sorted(set(self.head_ent_coefs) - set(DEFAULT_HEAD_ENT_COEFS))
        if unknown_heads:
            problems.append(
                f"head_ent_coefs: unknown head(s) {unknown_heads}; "
                f"heads are {list(DEFAULT_HEAD_ENT_COEFS)}"
            )
        if self.bootstrap not in ("greedy", "expected"):
            problems.append(f"bootstrap={self.bootstrap!r} must be 'greedy' or 'expected'")
        if self.seq_len is not None and self.seq_len < 1:
            problems.append(f"seq_len={self.seq_len} must be >= 1 or None")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            problems.append("gamma and gae_lambda must be in [0, 1]")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate={self.learning_rate} must be > 0")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
        """A config from ``data`` (over ``base``'s values, or the defaults), every value
        type-checked; an unknown field is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown TrainConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        values = {k: _check_type(k, v) for k, v in data.items()}
        if "head_ent_coefs" in values:
            values["head_ent_coefs"] = {**DEFAULT_HEAD_ENT_COEFS, **values["head_ent_coefs"]}
        return dataclasses.replace(base if base is not None else cls(), **values)

    @classmethod
    def from_toml(cls, path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
        """A config from a TOML file of ``field = value`` lines (the ``[train]`` table, if the
        file has one, else the top level). ``"none"`` stands for None, which TOML lacks."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--config {path}: cannot read it ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"--config {path}: not valid TOML ({exc})") from exc
        table = data.get("train", data)
        if not isinstance(table, dict):
            raise ValueError(f"--config {path}: [train] must be a table")
        table = {k: (None if v == "none" else v) for k, v in table.items()}
        try:
            return cls.from_dict(table, base)
        except ValueError as exc:
            raise ValueError(f"--config {path}: {exc}") from exc


#: Fields that must be at least 1.
_POSITIVE = (
    "total_steps",
    "obs_norm_every",
    "num_envs",
    "num_slots",
    "episode_length",
    "feature_dim",
    "lstm_hidden_dim",
    "head_hidden_dim",
    "value_hidden_dim",
    "num_steps",
    "update_epochs",
    "num_minibatches",
    "eval_episodes",
    "final_eval_episodes",
)

#: Fields a resumed run may change: they do not change what the run computes (the device
#: does only in the last bits, which is why a resume on another device is not bit for bit).
RESUME_SETTABLE = frozenset(
    {
        "total_steps",
        "device",
        "torch_threads",
        "eval_every",
        "eval_episodes",
        "final_eval_episodes",
        "checkpoint_every",
        "log_every",
    }
)


@cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "None"
    if get_origin(tp) is dict:
        return "a table of head = float"
    return getattr(tp, "__name__", str(tp))


def _matches(tp: Any, value: Any) -> Any:
    """``value`` as type ``tp`` (an int is accepted as a float), or raise ``TypeError``."""
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for arg in get_args(tp):
            try:
                return _matches(arg, value)
            except TypeError:
                continue
        raise TypeError
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise TypeError
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError
        return {str(k): _matches(float, v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _check_type(name: str, value: Any) -> Any:
    tp = _field_types()[name]
    try:
        return _matches(tp, value)
    except TypeError:
        raise ValueError(f"{name}: expected {_type_name(tp)}, got {value!r}") from None


def parse_field(name: str, text: str) -> Any:
    """A command-line string as the value of field ``name`` (``none`` = None; a dict as
    ``op=1.0,slot=0.5``); raises ``ValueError`` naming the field and the expected type."""
    if name not in _field_types():
        raise ValueError(f"unknown TrainConfig field {name!r}")
    tp = _field_types()[name]
    raw = text.strip()
    value: Any
    if raw.lower() == "none":
        value = None
    elif get_origin(tp) is dict:
        value = {}
        for part in filter(None, (p.strip() for p in raw.split(","))):
            key, sep, num = part.partition("=")
            try:
                value[key.strip()] = float(num) if sep else num
            except ValueError:
                value[key.strip()] = num
    elif raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if isinstance(value, float) and "." not in raw and "e" not in raw.lower():
            value = raw  # inf/nan spelt some other way stay text and fail the type check
    return _check_type(name, value)


def field_type_name(name: str) -> str:
    """What the CLI shows as the metavar of field ``name``."""
    tp = _field_types()[name]
    if get_origin(tp) is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if get_origin(tp) is dict:
        return "HEAD=FLOAT,..."
    if get_origin(tp) in (types.UnionType, typing.Union):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return "|".join(field_type_name_of(a) for a in inner) + "|none"
    return field_type_name_of(tp)


def field_type_name_of(tp: Any) -> str:
    return {int: "INT", float: "FLOAT", str: "TEXT", bool: "BOOL"}.get(tp, str(tp))


@cache
def field_help() -> dict[str, str]:
    """Each field's docstring (the string under it in the class body), or its section."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = ""
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                doc = " ".join(str(nxt.value.value).split())
            docs[node.target.id] = doc
    return docs

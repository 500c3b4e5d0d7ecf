"""A training run's folder and files: claiming it, ``config.json``, CSV logs and checkpoints.

Everything that reaches the disk goes through here, so the trainer's loop stays the
algorithm. Every file is written atomically (temporary file, then ``os.replace``): a crash never
leaves half a checkpoint or a truncated CSV. A folder is claimed by creating its
``config.json`` exclusively, so two runs never share one, and a folder that holds a run is only
reused with ``overwrite=True`` or by resuming it.

Only one process writes a run's files (rank 0 when training is distributed); the others
construct no ``RunFiles``.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import torch

from esper_ref import __version__

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
METRICS_NAME = "metrics.csv"
EVAL_NAME = "eval.csv"
CURVE_NAME = "learning_curve.png"
TENSORBOARD_DIR = "tb"
#: Everything a run writes; ``overwrite`` removes exactly these.
RUN_FILES = (CONFIG_NAME, CHECKPOINT_NAME, BEST_NAME, METRICS_NAME, EVAL_NAME, CURVE_NAME)

#: 2 added the learning-rate schedule, KL-stop and evaluation history; 1 still loads.
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
#: Keys a checkpoint needs to be evaluated, and to be resumed.
EVAL_KEYS = ("config", "policy", "obs_rms")
RESUME_KEYS = (*EVAL_KEYS, "optimizer", "counters", "episodes", "rng", "env", "rollout")

METRIC_FIELDS = (
    "update",
    "global_step",
    "wall_time",
    "steps_per_sec",
    "episode_return_mean",
    "episodes",
    "learning_rate",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "grad_norm",
    "opt_steps",
    "early_stopped",
    "nonfinite_skips",
)
EVAL_FIELDS = (
    "update",
    "global_step",
    "wall_time",
    "eval_return_mean",
    "eval_return_ci95",
    "eval_return_std",
    "episodes",
    "best",
)
INT_FIELDS = frozenset(
    {"update", "global_step", "episodes", "opt_steps", "early_stopped", "nonfinite_skips", "best"}
)


class RunFolderError(ValueError):
    """An output folder that cannot be used (exists, is a file, is not writable)."""


# -- atomic files --------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file and ``os.replace``. The file gets the usual
    umask permissions (``mkstemp`` would leave it readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


# -- the folder ------------------------------------------------------------------------------


def _looks_like_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_FILES)


def _claim(folder: Path) -> None:
    """Create ``config.json`` exclusively: of two runs that pick one folder, one fails."""
    try:
        with (folder / CONFIG_NAME).open("x", encoding="utf-8") as fh:
            fh.write("{}\n")
    except FileExistsError:
        raise RunFolderError(
            f"{folder}: another run claimed this folder just now; choose another --out-dir"
        ) from None
    except OSError as exc:
        raise RunFolderError(f"{folder}: cannot write there ({exc.strerror or exc})") from None


def claim_out_dir(folder: Path, overwrite: bool = False) -> Path:
    """Make ``folder`` this run's own: created if missing; an existing run there is refused
    unless ``overwrite`` (which removes that run's files, and nothing else)."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--out-dir {folder}: is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not _looks_like_run(folder):
            raise RunFolderError(
                f"--out-dir {folder}: not empty and not an esper-ref run folder; "
                "choose an empty or new folder"
            )
        if not overwrite:
            raise RunFolderError(
                f"--out-dir {folder}: holds a run already; pass --overwrite to replace it, "
                f"--resume {folder} to continue it, or choose another --out-dir"
            )
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / TENSORBOARD_DIR, ignore_errors=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(
            f"--out-dir {folder}: cannot create it ({exc.strerror or exc})"
        ) from None
    _claim(folder)
    return folder


def next_run_dir(root: Path, name: str) -> Path:
    """``root/<name>-<n>`` for the first ``n`` not taken, created atomically (two runs
    started at once get different folders)."""
    if root.exists() and not root.is_dir():
        raise RunFolderError(f"{root}: is a file, not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{root}: cannot create it ({exc.strerror or exc})") from None
    taken = []
    for child in root.iterdir():
        prefix, _, num = child.name.rpartition("-")
        if prefix == name and num.isdigit():
            taken.append(int(num))
    n = max(taken, default=0) + 1
    while True:
        folder = root / f"{name}-{n}"
        try:
            folder.mkdir()
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            raise RunFolderError(f"{root}: cannot write there ({exc.strerror or exc})") from None
        _claim(folder)
        return folder


def git_commit(path: Path) -> str | None:
    """The commit of the git checkout holding ``path`` (``+dirty`` if it has changes)."""
    try:
        kw: dict[str, Any] = {"cwd": path, "capture_output": True, "text": True, "timeout": 5}
        head = str(subprocess.run(["git", "rev-parse", "HEAD"], check=True, **kw).stdout).strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **kw)
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def run_metadata(command: Sequence[str] | None) -> dict[str, Any]:
    return {
        "esper_ref": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "command": list(sys.argv if command is None else command),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


# -- CSV logs ------------------------------------------------------------------------------


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in INT_FIELDS:
        return str(int(value))
    v = float(value)
    return "" if math.isnan(v) else format(v, ".7g")


class CsvLog:
    """An append-only CSV file with a fixed header; integer columns are written as integers
    and NaN as an empty cell."""

    def __init__(self, path: Path, fields: Sequence[str]) -> None:
        self.path = path
        self.fields = tuple(fields)

    def append(self, row: Mapping[str, Any]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(self.fields)
            w.writerow([_cell(k, row.get(k)) for k in self.fields])

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def keep_until(self, update: int, source: CsvLog | None = None) -> None:
        """Rewrite the file with the rows of ``source`` (default: itself) up to ``update``:
        rows a crashed run wrote after its last checkpoint are dropped."""
        rows = (source or self).read()
        kept = [r for r in rows if r.get("update", "").isdigit() and int(r["update"]) <= update]
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(self.fields)
        for r in kept:
            w.writerow([r.get(k, "") for k in self.fields])
        atomic_write_text(self.path, text.getvalue())


def read_float(row: Mapping[str, str], key: str) -> float:
    cell = row.get(key, "")
    try:
        return float(cell) if cell not in ("", None) else math.nan
    except ValueError:
        return math.nan


class RunFiles:
    """The files of one run folder, written by the one process that owns the run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.metrics = CsvLog(folder / METRICS_NAME, METRIC_FIELDS)
        self.evals = CsvLog(folder / EVAL_NAME, EVAL_FIELDS)
        self._tb: Any = None

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    @property
    def best(self) -> Path:
        return self.folder / BEST_NAME

    @property
    def curve(self) -> Path:
        return self.folder / CURVE_NAME

    def write_config(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        doc = {"config": dict(config), **meta}
        atomic_write_text(self.folder / CONFIG_NAME, json.dumps(doc, indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def add_resume(self, config: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
        doc = self.read_config()
        doc["config"] = dict(config)
        doc.setdefault("resumes", []).append(dict(entry))
        atomic_write_text(self.folder / CONFIG_NAME, json.dumps(doc, indent=2) + "\n")

    def log_update(self, row: Mapping[str, Any]) -> None:
        self.metrics.append(row)
        if self._tb is None:
            self._tb = _tensorboard_writer(self.folder / TENSORBOARD_DIR)
        if self._tb:
            step = int(row["global_step"])
            for k in METRIC_FIELDS[2:]:
                v = row.get(k)
                if v is not None and not math.isnan(float(v)):
                    self._tb.add_scalar(f"train/{k}", float(v), step)

    def log_eval(self, row: Mapping[str, Any]) -> None:
        self.evals.append(row)
        if self._tb:
            self._tb.add_scalar("eval/return", float(row["eval_return_mean"]), row["global_step"])

    def flush(self) -> None:
        if self._tb:
            self._tb.flush()

    def keep_until(self, update: int, source: RunFiles | None = None) -> None:
        self.metrics.keep_until(update, source.metrics if source else None)
        self.evals.keep_until(update, source.evals if source else None)


def _tensorboard_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return False
    return SummaryWriter(log_dir=str(log_dir))


# -- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(state: Mapping[str, Any], path: Path) -> Path:
    atomic_write(path, lambda fh: torch.save(dict(state), fh))
    return path


def load_checkpoint(path: str | Path, need: Iterable[str] = EVAL_KEYS) -> dict[str, Any]:
    """A checkpoint's contents on the CPU, loaded with ``weights_only=True``; ``ValueError``
    names what is wrong (not a checkpoint, another format, a key missing)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give its {CHECKPOINT_NAME} or {BEST_NAME}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a readable esper-ref checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path}: not an esper-ref checkpoint of a format this version reads "
            f"({', '.join(map(str, READABLE_FORMATS))}); got format {got!r}"
        )
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)} (damaged or edited)")
    if not isinstance(state["config"], dict):
        raise ValueError(f"{path}: checkpoint's config is not a table")
    return state


def load_policy_weights(policy: Any, state: Mapping[str, Any], path: Path) -> None:
    """``state["policy"]`` into ``policy``; a mismatch names the first parameters that differ
    instead of torch's page of size errors."""
    weights = state["policy"]
    if not isinstance(weights, Mapping):
        raise ValueError(f"{path}: checkpoint's policy is not a state dict")
    own = policy.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and isinstance(weights[k], torch.Tensor) and weights[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shapes differ (checkpoint vs its config): " + "; ".join(shapes[:3]))
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        raise ValueError(
            f"{path}: the policy weights do not fit the network its config describes: "
            + ", ".join(parts)
        )
    policy.load_state_dict(weights)


# -- numpy and python state inside weights_only checkpoints -------------------------------------


def np_state_to_safe(st: tuple[Any, ...]) -> list[Any]:
    return [st[0], torch.from_numpy(np.asarray(st[1]).astype(np.int64)), *st[2:]]


def np_state_from_safe(st: list[Any]) -> tuple[Any, ...]:
    return (st[0], st[1].numpy().astype(np.uint32), *st[2:])


def numpy_rng_state() -> list[Any]:
    return np_state_to_safe(cast(tuple[Any, ...], np.random.get_state()))


def to_safe(obj: Any) -> Any:
    """numpy arrays become tagged tensors so checkpoints load with ``weights_only=True``."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(obj.copy()), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_safe(v) for v in obj)
    return obj


def from_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return obj["__ndarray__"].numpy().astype(obj["dtype"])
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(from_safe(v) for v in obj)
    return obj


def to_tuple(obj: Any) -> Any:
    if isinstance(obj, list | tuple):
        return tuple(to_tuple(v) for v in obj)
    return obj

"""Per-call cost of our tensor contracts against jaxtyping + beartype, side by side.

The same three-argument function (float32[32, 114], int64[32, 3], bool[32, 6] -> float32[32])
is timed unchecked, with our contract (keyword specs), with our contract written in the
annotations with the observation width as a dimension expression (``F32["batch
24+30*num_slots"]``), with our contract switched off, and with jaxtyping's annotations checked
by beartype. Every checked variant really checks all three arguments and the return value on
every call (each is shown rejecting a bad call before timing).

The ratio is printed for the worse of our two checked variants. One more line times our
keyword variant while another thread holds a ``mode("on")`` block: the mode is per context,
so each call then also reads its context's mode.

    python bench/contracts_overhead.py [--number 20000] [--repeat 30]

The last line is ``overhead_ratio_vs_jaxtyping: X``: our added cost divided by theirs.
"""

# No ``from __future__ import annotations``: jaxtyping + beartype must see real annotations, or
# they silently check nothing (the sanity check in ``main`` would catch that).
import argparse
import contextlib
import threading
import time
import timeit
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from contracts import F32, I64, Bool, ContractError, contract, mode

FEATURES = "float32[batch, 114]"
INDICES = "int64[batch, num_slots]"
MASK = "bool[batch, 6]"


def plain(features: Tensor, blueprint_indices: Tensor, mask: Tensor) -> Tensor:
    return features[:, 0]


def ours_on() -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    with mode("on"):
        return contract(  # type: ignore[no-any-return]
            features=FEATURES, blueprint_indices=INDICES, mask=MASK, returns="float32[batch]"
        )(plain)


def ours_annotated() -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    with mode("on"):

        @contract
        def checked(
            features: F32["batch 24+30*num_slots"],
            blueprint_indices: I64["batch num_slots"],
            mask: Bool["batch 6"],
        ) -> F32[" batch,"]:
            return features[:, 0]

    return checked


def ours_off() -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    with mode("off"):
        return contract(  # type: ignore[no-any-return]
            features=FEATURES, blueprint_indices=INDICES, mask=MASK, returns="float32[batch]"
        )(plain)


def jaxtyping_beartype() -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    from beartype import beartype
    from jaxtyping import Bool, Float32, Int64, jaxtyped

    @jaxtyped(typechecker=beartype)
    def checked(
        features: Float32[Tensor, "batch 114"],
        blueprint_indices: Int64[Tensor, "batch num_slots"],
        mask: Bool[Tensor, "batch 6"],
    ) -> Float32[Tensor, " batch"]:
        return features[:, 0]

    return checked  # type: ignore[no-any-return]


BLOCK = "ours (on), block open elsewhere"


@contextlib.contextmanager
def _mode_block_in_another_thread() -> Iterator[None]:
    """Another thread sits inside ``mode("on")``: our wrappers then read their context's mode."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with mode("on"):
            entered.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


def time_call(
    fn: Callable[..., Tensor], args: tuple[Tensor, ...], number: int, repeat: int
) -> float:
    """Min-of-repeats CPU seconds per call (process time: on a shared machine, time spent
    descheduled would otherwise swamp differences of a fraction of a microsecond)."""
    timer = timeit.Timer(lambda: fn(*args), timer=time.process_time)
    return min(timer.repeat(repeat=repeat, number=number)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per repeat")
    parser.add_argument(
        "--repeat", type=int, default=30, help="repeats, spread over 5 rounds (the minimum is kept)"
    )
    ns = parser.parse_args()
    torch.set_num_threads(1)

    args = (
        torch.randn(32, 114),
        torch.zeros(32, 3, dtype=torch.int64),
        torch.ones(32, 6, dtype=torch.bool),
    )
    bad = (args[0], args[2], args[1])  # masks where blueprint_indices goes
    variants = {
        "unchecked": plain,
        "ours (on)": ours_on(),
        "ours (annotated+expr)": ours_annotated(),
        "ours (off)": ours_off(),
        "jaxtyping+beartype": jaxtyping_beartype(),
    }
    assert variants["ours (off)"] is plain, "off must return the original function"
    wrong_width = (torch.randn(32, 113), args[1], args[2])
    try:
        variants["ours (annotated+expr)"](*wrong_width)
    except ContractError:
        pass
    else:  # pragma: no cover - the expression would not be checked
        raise SystemExit("ours (annotated+expr) accepted obs width 113 for 3 slots")
    for name in ("ours (on)", "ours (annotated+expr)", "jaxtyping+beartype"):
        try:
            variants[name](*bad)
        except (ContractError, TypeError, ValueError):
            pass
        else:  # pragma: no cover - the benchmark would be meaningless
            raise SystemExit(f"{name} accepted a bad call: nothing is being checked")

    times: dict[str, float] = {}
    # Interleave the variants over rounds so that machine noise hits them alike.
    rounds = 5
    per_round = max(1, ns.repeat // rounds)
    for _ in range(rounds):
        for name, fn in variants.items():
            t = time_call(fn, args, ns.number, per_round)
            times[name] = min(times.get(name, t), t)
        with _mode_block_in_another_thread():
            t = time_call(variants["ours (on)"], args, ns.number, per_round)
        times[BLOCK] = min(times.get(BLOCK, t), t)

    base = times["unchecked"]
    print(
        f"torch {torch.__version__}, 1 thread, {ns.number} calls x {ns.repeat} repeats "
        "(min of process CPU time)"
    )
    for name, t in times.items():
        added = "" if name == "unchecked" else f"  (added {(t - base) * 1e6:+.3f} us)"
        print(f"{name:>34}: {t * 1e6:8.3f} us/call{added}")
    keyword = max(times["ours (on)"] - base, 0.0)
    annotated = max(times["ours (annotated+expr)"] - base, 0.0)
    ours = max(keyword, annotated)
    theirs = times["jaxtyping+beartype"] - base
    print(
        f"ours added: {keyword * 1e6:.3f} us (keywords), {annotated * 1e6:.3f} us (annotations "
        f"+ expression); jaxtyping+beartype added: {theirs * 1e6:.3f} us"
    )
    print(f"off added: {(times['ours (off)'] - base) * 1e6:+.3f} us (the same function object)")
    print(
        f"reading the context's mode while another thread holds a mode() block: "
        f"{(times[BLOCK] - times['ours (on)']) * 1e6:+.3f} us/call"
    )
    print(f"overhead_ratio_vs_jaxtyping: {ours / theirs:.4f}")


if __name__ == "__main__":
    main()

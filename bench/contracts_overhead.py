"""Per-call cost of our tensor contracts against jaxtyping + beartype, side by side.

The same three-argument function (float32[32, 114], int64[32, 3], bool[32, 6] -> float32[32])
is timed unchecked, with our contract, with our contract switched off, and with jaxtyping's
annotations checked by beartype. Every checked variant really checks all three arguments and
the return value on every call (each is shown rejecting a bad call before timing).

    python bench/contracts_overhead.py [--number 20000] [--repeat 15]

The last line is ``overhead_ratio_vs_jaxtyping: X``: our added cost divided by theirs.
"""

# No ``from __future__ import annotations``: jaxtyping + beartype must see real annotations, or
# they silently check nothing (the sanity check in ``main`` would catch that).
import argparse
import timeit
from collections.abc import Callable

import torch
from torch import Tensor

from contracts import ContractError, contract, mode

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
        features: Float32[Tensor, "batch 114"],  # noqa: F722
        blueprint_indices: Int64[Tensor, "batch num_slots"],  # noqa: F722
        mask: Bool[Tensor, "batch 6"],  # noqa: F722
    ) -> Float32[Tensor, " batch"]:  # noqa: F722
        return features[:, 0]

    return checked  # type: ignore[no-any-return]


def time_call(
    fn: Callable[..., Tensor], args: tuple[Tensor, ...], number: int, repeat: int
) -> float:
    """Min-of-repeats seconds per call."""
    timer = timeit.Timer(lambda: fn(*args))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=15, help="repeats (the minimum is kept)")
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
        "ours (off)": ours_off(),
        "jaxtyping+beartype": jaxtyping_beartype(),
    }
    assert variants["ours (off)"] is plain, "off must return the original function"
    for name in ("ours (on)", "jaxtyping+beartype"):
        try:
            variants[name](*bad)
        except (ContractError, TypeError, ValueError):
            pass
        else:  # pragma: no cover - the benchmark would be meaningless
            raise SystemExit(f"{name} accepted a bad call: nothing is being checked")

    times: dict[str, float] = {}
    # Interleave the variants over rounds so that machine noise hits them alike.
    rounds = 3
    for _ in range(rounds):
        for name, fn in variants.items():
            t = time_call(fn, args, ns.number, max(1, ns.repeat // rounds))
            times[name] = min(times.get(name, t), t)
    base = times["unchecked"]
    print(f"torch {torch.__version__}, 1 thread, {ns.number} calls x {ns.repeat} repeats (min)")
    for name, t in times.items():
        added = "" if name == "unchecked" else f"  (added {(t - base) * 1e6:+.3f} us)"
        print(f"{name:>20}: {t * 1e6:8.3f} us/call{added}")
    ours = max(times["ours (on)"] - base, 0.0)
    theirs = times["jaxtyping+beartype"] - base
    print(f"ours added: {ours * 1e6:.3f} us; jaxtyping+beartype added: {theirs * 1e6:.3f} us")
    print(f"off added: {(times['ours (off)'] - base) * 1e6:+.3f} us (the same function object)")
    print(f"overhead_ratio_vs_jaxtyping: {ours / theirs:.4f}")


if __name__ == "__main__":
    main()

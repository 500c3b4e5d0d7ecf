"""The switch: mode() per thread and task, warnings and require_checks when checks are gone."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest
import torch

from contracts import ContractError, check, contract, mode, switch
from contracts.testing import ContractsDisabledError, require_checks


def _f(x: torch.Tensor) -> torch.Tensor:
    return x


BAD = torch.zeros(2, dtype=torch.int64)


def test_mode_in_one_thread_never_changes_another() -> None:
    checked = contract(x="float32[n]")(_f)
    inside, done = threading.Event(), threading.Event()
    passed_there: list[bool] = []

    def switched_off() -> None:
        with mode("off"):
            passed_there.append(checked(BAD) is BAD)  # off here
            inside.set()
            done.wait(timeout=30)

    other = threading.Thread(target=switched_off)
    other.start()
    assert inside.wait(timeout=30)
    try:
        rejected = 0
        for _ in range(2000):  # while the other thread sits in mode("off")
            try:
                checked(BAD)
            except ContractError:
                rejected += 1
        with pytest.raises(ContractError):
            check("here", x=(BAD, "float32[n]"))
    finally:
        done.set()
        other.join()
    assert rejected == 2000 and passed_there == [True]


def test_mode_in_one_asyncio_task_never_changes_another() -> None:
    checked = contract(x="float32[n]")(_f)

    async def off_task(entered: asyncio.Event, leave: asyncio.Event) -> bool:
        with mode("off"):
            entered.set()
            await leave.wait()
            return checked(BAD) is BAD

    async def checking_task(entered: asyncio.Event, leave: asyncio.Event) -> bool:
        await entered.wait()
        try:
            checked(BAD)
        except ContractError:
            return True
        finally:
            leave.set()
        return False

    async def main() -> list[bool]:
        entered, leave = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(off_task(entered, leave), checking_task(entered, leave)))

    assert asyncio.run(main()) == [True, True]


def test_a_new_thread_starts_from_the_decorated_level() -> None:
    checked = contract(x="float32[n]")(_f)
    seen: list[str] = []

    def run() -> None:
        try:
            checked(BAD)
            seen.append("passed")
        except ContractError:
            seen.append("rejected")

    with mode("off"):  # a thread does not inherit the creating thread's block
        t = threading.Thread(target=run)
        t.start()
        t.join()
    assert seen == ["rejected"]


def test_entering_a_checking_mode_warns_once_when_contracts_were_compiled_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(switch, "_COMPILED_OUT", [])
    monkeypatch.setattr(switch, "_warned", [False])
    monkeypatch.setenv("ESPER_CONTRACTS", "off")
    compiled_out = contract(x="float32[n]")(_f)
    monkeypatch.delenv("ESPER_CONTRACTS")
    assert compiled_out is _f
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mode("off"):  # switching off warns about nothing
            pass
    warned = pytest.warns(RuntimeWarning, match=r"cannot turn on the contracts of 1 function")
    with warned, mode("full"):
        assert compiled_out(BAD) is BAD  # what the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        with mode("on"):
            pass
    with mode("off"):  # an explicit mode("off") block is not a compiled-out surprise
        contract(x="float32[n]")(_f)
    assert switch.compiled_out() == ("_f",)


def test_require_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(switch, "_COMPILED_OUT", [])
    checked = contract(x="float32[n]")(_f)
    require_checks(checked)
    require_checks()
    with mode("off"), pytest.raises(ContractsDisabledError, match="contracts are off here"):
        require_checks(checked)
    with pytest.raises(ContractsDisabledError, match="_f has no active contract"):
        require_checks(_f)
    monkeypatch.setenv("ESPER_CONTRACTS", "off")
    contract(x="float32[n]")(_f)
    with pytest.raises(ContractsDisabledError) as info:
        require_checks()
    assert "contracts are off here" in str(info.value)
    assert "1 function(s) were decorated while contracts were off: _f" in str(info.value)
    assert isinstance(info.value, AssertionError)  # a failed test, as a test runner sees it


def test_mode_blocks_restore_and_count() -> None:
    assert switch.ACTIVE[0] == 0
    with mode("off"):
        assert switch.ACTIVE[0] == 1 and switch.current_level() == switch.OFF
        with mode("full"):
            assert switch.ACTIVE[0] == 2 and switch.current_level() == switch.FULL
        assert switch.current_level() == switch.OFF
    assert switch.ACTIVE[0] == 0 and switch.override_level() is None

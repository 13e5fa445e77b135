"""The heap is trimmed once after a burst of commits, not per commit (ADR 0046)."""

from __future__ import annotations

import asyncio

from gridchain.node.heap_trim import QuietTrim, libc_trim


def test_a_burst_of_work_is_followed_by_one_trim() -> None:
    calls: list[int] = []

    async def burst() -> int:
        trim = QuietTrim(lambda: calls.append(1), delay_s=0.01)
        for _ in range(5):
            trim.touch()  # five commits in a row: each postpones the trim
        assert calls == []
        await asyncio.sleep(0.05)  # later than the one timer left: the loop runs it first
        return trim.trims

    assert asyncio.run(burst()) == 1
    assert calls == [1]


def test_a_cancelled_trim_does_not_run_and_no_loop_means_no_trim() -> None:
    calls: list[int] = []
    trim = QuietTrim(lambda: calls.append(1), delay_s=0.01)
    trim.touch()  # no running loop (a driver test): nothing is scheduled

    async def cancelled() -> None:
        trim.touch()
        trim.cancel()
        await asyncio.sleep(0.05)

    asyncio.run(cancelled())
    assert calls == []


def test_without_a_c_library_trim_nothing_is_scheduled() -> None:
    async def touch() -> None:
        QuietTrim(None).touch()

    asyncio.run(touch())  # would raise if it tried to call None later
    assert libc_trim() is None or callable(libc_trim())


def test_work_that_never_pauses_still_gets_a_trim() -> None:
    """ADR 0054: touches every few milliseconds never leave ``delay_s`` of quiet, yet the trim
    runs once it has been postponed ``max_wait_s``."""
    calls: list[int] = []

    async def busy() -> int:
        trim = QuietTrim(lambda: calls.append(1), delay_s=0.05, max_wait_s=0.1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        while not calls and loop.time() - began < 30:  # no pause of 0.05 s in between
            trim.touch()
            await asyncio.sleep(0.005)
        return trim.trims

    assert asyncio.run(busy()) >= 1


def test_requests_and_catch_up_reads_arm_the_trim() -> None:
    """An API request or a peer's catch-up (reads, no commit) arms the quiet trim too."""
    from gridchain.node.runtime import Node

    touched: list[int] = []

    class Counting:
        def touch(self) -> None:
            touched.append(1)

    node = Node.__new__(Node)
    node._heap_trim = Counting()  # type: ignore[assignment]
    node.note_reads()
    assert touched == [1]

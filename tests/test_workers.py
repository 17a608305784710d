"""`serve.workers.WorkerPool`: each answer reaches its own caller, errors come back
with the worker's traceback, a dead worker fails only its call and is replaced."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

import pytest

from dagtrace.serve import workers
from dagtrace.serve.workers import RemoteTraceback, WorkerPool


def no_setup() -> None:
    pass


def echo(body: bytes, flag: bool) -> tuple[bytes, bool]:
    """The body and flag back; a body naming a FIFO pair first tells it started (the
    first FIFO) and waits to be let go (the second): a gate, no sleeps."""
    if body.startswith(b"gate:"):
        started, gate = body[5:].decode().split("|")
        Path(started).write_text("started")
        Path(gate).read_text()
    return body, flag


def fail(body: bytes, flag: bool) -> None:
    raise KeyError(body.decode())


def exit_at_once(body: bytes, flag: bool) -> None:
    os._exit(3)


@contextmanager
def _pool(work: object, count: int = 1) -> Iterator[WorkerPool]:
    pool = WorkerPool(count, work, initializer=no_setup)  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        pool.close()


def _pieces(body: bytes, size: int = 65_536) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("memfd", [True, False], ids=["shared-memory", "no-memfd"])
def test_bodies_in_pieces_round_trip_to_their_own_callers(
    monkeypatch: pytest.MonkeyPatch, memfd: bool
) -> None:
    """Bodies up to 1 MB through the shared memory, and over it in pieces of 64 KiB
    into pipes of 4 KiB: the pipe fills at once, and what it could not take goes out
    in order as the worker reads. The same workers take both kinds, one after the
    other, so a body in the pipe does not meet a stale one in the memory. Without
    memfd (not Linux), every body goes through the pipe."""
    monkeypatch.setattr(workers, "_PIPE_BYTES", 4096)
    monkeypatch.setattr(workers, "_SHARED_BYTES", 1_000_000)
    if not memfd:
        monkeypatch.delattr(os, "memfd_create")
    bodies = [random.Random(n).randbytes(300_000 * (n + 1) + n) for n in range(6)]
    bodies += [b"", bodies[0][:1_000_000], bodies[5][:1_000_001]]

    async def scenario() -> list[tuple[bytes, bool]]:
        with _pool(echo, count=2) as pool:
            return await asyncio.gather(
                *(pool.submit(_pieces(b), n % 2 == 0) for n, b in enumerate(bodies))
            )

    assert asyncio.run(scenario()) == [(b, n % 2 == 0) for n, b in enumerate(bodies)]


def test_a_cancelled_call_does_not_hand_its_answer_to_the_next(tmp_path: Path) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    os.mkfifo(started)
    os.mkfifo(gate)

    async def scenario() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        with _pool(echo) as pool:
            first = asyncio.create_task(pool.submit([f"gate:{started}|{gate}".encode()], True))
            await loop.run_in_executor(None, started.read_text)  # the worker holds it
            first.cancel()
            second = asyncio.create_task(pool.submit([b"sec", b"ond"], False))
            await loop.run_in_executor(None, gate.write_text, "go")
            return await second

    assert asyncio.run(scenario()) == (b"second", False)


def test_an_error_comes_back_with_the_workers_traceback() -> None:
    async def scenario() -> None:
        with _pool(fail) as pool:
            await pool.submit([b"missing"], True)

    with pytest.raises(KeyError, match="missing") as raised:
        asyncio.run(scenario())
    cause = raised.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "in fail" in str(cause)


def test_a_dead_worker_fails_its_call_and_the_next_call_gets_a_new_one() -> None:
    async def scenario() -> tuple[bytes, bool]:
        with _pool(echo) as pool:
            await pool.submit([b"warm"], False)
            worker = pool._workers[0].process
            os.kill(worker.pid, signal.SIGKILL)
            worker.join()
            with pytest.raises(BrokenProcessPool):  # sent to the dead one, or seen dead
                while True:
                    await pool.submit([b"lost"], False)
            return await pool.submit([b"after"], True)

    assert asyncio.run(scenario()) == (b"after", True)


def test_a_worker_exiting_mid_call_is_a_broken_pool_not_a_hang() -> None:
    async def scenario() -> None:
        with _pool(exit_at_once) as pool:
            await pool.submit([b"x" * 200_000], False)

    with pytest.raises(BrokenProcessPool):
        asyncio.run(scenario())


class NeedsTwo(Exception):
    """Pickles, but does not unpickle: `Exception` pickles its message alone."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} {second}")


def raise_needs_two(body: bytes, flag: bool) -> None:
    raise NeedsTwo("needs", "two")


def test_an_answer_that_does_not_unpickle_fails_its_call_and_the_worker_goes_on() -> None:
    async def scenario() -> None:
        with _pool(raise_needs_two) as pool:
            for body in (b"x", b"y"):  # the second is answered too: nothing stuck
                with pytest.raises(RuntimeError, match="did not unpickle"):
                    await asyncio.wait_for(pool.submit([body], False), 60)

    asyncio.run(scenario())


def test_serve_refuses_workers_where_the_event_loop_cannot_watch_pipes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Windows' event loop: `--decoders N` is refused with what to do, nothing opened."""
    from click.testing import CliRunner

    from dagtrace.cli import main
    from dagtrace.cli.common import EXIT_USAGE

    monkeypatch.setattr(WorkerPool, "supported", staticmethod(lambda: False))
    db = tmp_path / "runs.db"
    result = CliRunner().invoke(main, ["serve", "--db", str(db), "--decoders", "2"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "use 0 here" in result.output
    assert not db.exists()

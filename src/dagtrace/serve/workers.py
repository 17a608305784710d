"""Worker processes fed request bodies by the event loop (`WorkerPool`).

`concurrent.futures.ProcessPoolExecutor` hands each call to a manager thread and a
feeder thread, which pickles the body and writes it into a 64 KiB pipe a piece at a
time: in `dagtrace serve` that cost the server process 1.7 ms of CPU per request of 512
spans, more than reading the request. Here the event loop hands each worker its body
itself, without a thread, and reads the answer when the worker sends it. Each worker
takes one body at a time; the others wait for an idle worker.

A body goes into memory shared with its worker (`_SharedMemory`) when it fits, and
the pipe carries only its size: a pipe allocates and frees a page per 4 KiB written,
and writing and reading 660 KiB (bench_serve's requests) took 730 µs of CPU through
one, 48 µs through the mapping. Bodies above `_SHARED_BYTES`, and every body where
there is no such memory, go through the pipe (1 MiB pipes on Linux), without a copy,
written when the pipe can take them.

The frames are `multiprocessing.connection.Connection`'s (a 4-byte big-endian length,
then the bytes), so a worker reads them with `recv_bytes`: first the flag and where
the body is, then the body itself if it is not in the mapping. A worker that dies
fails the call in hand, and any later one sent to it, with `BrokenProcessPool`; a new
worker takes its place.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import multiprocessing
import multiprocessing.reduction
import os
import pickle
import struct
import sys
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any

_PIPE_BYTES = 1 << 20
"""Pipe capacity asked for (Linux's F_SETPIPE_SZ; elsewhere the default stays)."""
_F_SETPIPE_SZ = 1031
_SHARED_BYTES = 4 << 20
"""Each worker's shared memory for bodies, taken when it starts."""
_HEADER = struct.Struct("!i")
_CALL = struct.Struct("!?q")
"""A call's first frame: the flag, and the body's size in the shared memory (-1: the
body is the next frame)."""
_IN_PIPE = -1
_MAX_FRAME = 0x7FFFFFFF

Work = Callable[[bytes, bool], Any]


class RemoteTraceback(Exception):
    """The traceback of an exception a worker raised: set as its cause, so that a log
    of the exception shows where in the worker it happened."""

    def __str__(self) -> str:
        return str(self.args[0])


def _child(
    requests: Connection,
    answers: Connection,
    shared: _SharedMemory | None,
    work: Work,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
) -> None:
    """A worker's life: `initializer(*initargs)`, then one answer per request until the
    server closes the request pipe (after what is in hand)."""
    initializer(*initargs)
    while True:
        try:
            flag, size = _CALL.unpack(requests.recv_bytes())
            body = (
                requests.recv_bytes() if shared is None or size == _IN_PIPE else shared.read(size)
            )
        except EOFError:
            return
        try:
            answer = pickle.dumps((True, work(body, flag)))
        except Exception as e:  # noqa: BLE001 - sent to the server, which raises it
            answer = _pickled_error(e)
        answers.send_bytes(answer)


def _pickled_error(error: Exception) -> bytes:
    text = "".join(traceback.format_exception(error))
    try:
        return pickle.dumps((False, (error, text)))
    except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
        return pickle.dumps((False, (RuntimeError(f"{type(error).__name__}: {error}"), text)))


class _Worker:
    """One worker process and the parent's ends of its two pipes (non-blocking fds)."""

    def __init__(
        self, process: Any, requests: int, answers: int, shared: _SharedMemory | None
    ) -> None:
        self.process = process
        self.requests = requests
        self.answers = answers
        self.shared = shared
        """Where an idle worker's next body goes, if it fits (None: always the pipe)."""
        self.answer: asyncio.Future[Any] | None = None
        """The call in hand (done already if its caller was cancelled)."""
        self.unread = bytearray()
        self.unsent: deque[memoryview] = deque()
        """What the pipe could not take yet, in order."""
        self.dead = False


class WorkerPool:
    """`count` processes running `work(body, flag)`; `submit` from the event loop.

    Workers start with the first call, and one that died is replaced by the next
    call (not at once: a worker that cannot start would otherwise be restarted in a
    loop)."""

    def __init__(
        self,
        count: int,
        work: Work,
        *,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self._count = count
        self._child_args = (work, initializer, initargs)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        """The live workers."""
        self._idle: asyncio.Queue[_Worker] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def supported() -> bool:
        """Whether this platform's event loop watches pipes (not Windows')."""
        return sys.platform != "win32"

    async def submit(self, pieces: Sequence[bytes], flag: bool) -> Any:
        """`work(body, flag)` in an idle worker, the body sent as these pieces, in
        order; raises what it raised, or `BrokenProcessPool` if the worker died first."""
        size = sum(map(len, pieces))
        if size > _MAX_FRAME:
            raise ValueError("a body above 2 GiB")
        if self._idle is None:
            self._loop, self._idle = asyncio.get_running_loop(), asyncio.Queue()
        while len(self._workers) < self._count:
            self._idle.put_nowait(self._spawn())
        worker = await self._idle.get()
        while worker.dead:
            worker = await self._idle.get()
        worker.answer = answer = self._loop.create_future()  # type: ignore[union-attr]
        shared = worker.shared
        if shared is not None and size <= shared.size:  # an idle worker's: ours to fill
            shared.fill(pieces)
            self._write(worker, memoryview(_HEADER.pack(_CALL.size) + _CALL.pack(flag, size)))
        else:
            call = _CALL.pack(flag, _IN_PIPE)
            header = b"".join((_HEADER.pack(_CALL.size), call, _HEADER.pack(size)))
            for piece in (header, *pieces):
                self._write(worker, memoryview(piece))
        ok, result = await answer  # the worker goes back to the idle ones with its answer
        if ok:
            return result
        error, text = result
        error.__cause__ = RemoteTraceback(text)
        raise error

    def close(self, timeout: float = 30.0) -> None:
        """Let each worker finish what it holds, then end it (`terminate` after
        `timeout`). Called once the event loop has stopped, or from its thread."""
        loop, workers = self._loop, self._workers
        self._workers, self._idle = [], None
        for worker in workers:
            self._forget(worker, loop)
            os.close(worker.requests)  # the worker reads EOF after its request in hand
        for worker in workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
            os.close(worker.answers)

    # -- in the event loop ------------------------------------------------------------

    def _spawn(self) -> _Worker:
        requests_read, requests_write = self._context.Pipe(duplex=False)
        answers_read, answers_write = self._context.Pipe(duplex=False)
        shared = _SharedMemory.make(_SHARED_BYTES)
        process = self._context.Process(
            target=_child,
            args=(requests_read, answers_write, shared, *self._child_args),
            name="dagtrace-ingest-worker",
            daemon=True,
        )
        process.start()
        requests_read.close()
        answers_write.close()
        if shared is not None:
            shared.close_fd()  # the worker has its own; the mapping stays
        worker = _Worker(process, _own_fd(requests_write), _own_fd(answers_read), shared)
        try:
            import fcntl

            fcntl.fcntl(worker.requests, _F_SETPIPE_SZ, _PIPE_BYTES)
        except (ImportError, OSError):
            pass  # the default capacity: more writes a body, nothing else
        os.set_blocking(worker.requests, False)
        os.set_blocking(worker.answers, False)
        assert self._loop is not None
        self._loop.add_reader(worker.answers, self._read, worker)
        self._workers.append(worker)
        return worker

    def _write(self, worker: _Worker, data: memoryview) -> None:
        """Write now what the pipe takes; the rest, in order, when it takes more."""
        if worker.dead:
            return  # its answer already failed
        if worker.unsent:  # behind earlier bytes
            worker.unsent.append(data)
            return
        if self._write_some(worker, data):
            assert self._loop is not None
            self._loop.add_writer(worker.requests, self._write_more, worker)

    def _write_more(self, worker: _Worker) -> None:
        unsent = worker.unsent
        while unsent and not worker.dead:
            if self._write_some(worker, unsent.popleft()):
                return  # still waiting for room (the rest went back first in line)
        if not worker.dead:
            assert self._loop is not None
            self._loop.remove_writer(worker.requests)

    def _write_some(self, worker: _Worker, data: memoryview) -> bool:
        """Write `data` until the pipe is full; whether some of it waits (in `unsent`)."""
        while data:
            try:
                data = data[os.write(worker.requests, data) :]
            except BlockingIOError:
                worker.unsent.appendleft(data)
                return True
            except OSError as e:  # EPIPE: the worker is gone
                self._died(worker, e)
                return False
        return False

    def _read(self, worker: _Worker) -> None:
        try:
            chunk = os.read(worker.answers, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            self._died(worker, e)
            return
        if not chunk:
            self._died(worker, None)
            return
        unread = worker.unread
        unread += chunk
        while len(unread) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(unread)
            if len(unread) < _HEADER.size + size:
                break
            frame = unread[_HEADER.size : _HEADER.size + size]
            del unread[: _HEADER.size + size]
            waiting, worker.answer = worker.answer, None
            if waiting is None or waiting.done():  # (done: its caller went away)
                pass
            elif (answer := _unpickled(frame)) is not None:
                waiting.set_result(answer)
            else:  # a bug, never a hang of its caller
                waiting.set_exception(RuntimeError("an ingest worker's answer did not unpickle"))
            if self._idle is not None:  # (None once closed)
                self._idle.put_nowait(worker)

    def _died(self, worker: _Worker, error: OSError | None) -> None:
        """The worker exited, or its pipe broke: fail its call in hand."""
        if worker.dead:
            return
        worker.dead = True
        self._forget(worker, self._loop)
        self._workers.remove(worker)
        os.close(worker.requests)
        os.close(worker.answers)
        worker.process.join(1.0)
        waiting, worker.answer = worker.answer, None
        if waiting is not None and not waiting.done():
            reason = f" ({errno.errorcode.get(error.errno or 0, error)})" if error else ""
            waiting.set_exception(BrokenProcessPool(f"an ingest worker died{reason}"))

    def _forget(self, worker: _Worker, loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None and not loop.is_closed():
            loop.remove_reader(worker.answers)
            loop.remove_writer(worker.requests)


class _SharedMemory:
    """Memory a worker maps with the server process: a Linux memfd whose pages are
    taken when it is made (`posix_fallocate`), so filling it cannot fault for want of
    room, as a mapped file on a full /dev/shm would (SIGBUS in the server process).
    Pickled when its worker is spawned: the worker maps a duplicate of the descriptor."""

    def __init__(self, size: int, fd: int) -> None:
        self.size = size
        self._fd = fd
        self._buffer = mmap.mmap(fd, size)

    @classmethod
    def make(cls, size: int) -> _SharedMemory | None:
        """None without memfd (not Linux) or room for its pages: the pipe then."""
        try:
            fd = os.memfd_create("dagtrace-bodies", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return None
        try:
            os.posix_fallocate(fd, 0, size)
            return cls(size, fd)
        except OSError:
            os.close(fd)
            return None

    def __reduce__(self) -> tuple[Any, ...]:
        return _mapped, (self.size, multiprocessing.reduction.DupFd(self._fd))

    def close_fd(self) -> None:
        os.close(self._fd)

    def fill(self, pieces: Sequence[bytes]) -> None:
        offset = 0
        for piece in pieces:
            self._buffer[offset : offset + len(piece)] = piece
            offset += len(piece)

    def read(self, size: int) -> bytes:
        """A copy of the first `size` bytes: the worker's body."""
        return self._buffer[:size]


def _mapped(size: int, duplicate: Any) -> _SharedMemory:
    return _SharedMemory(size, duplicate.detach())


def _unpickled(frame: bytearray) -> Any:
    """A worker's answer, or None if it does not unpickle (an exception class whose
    constructor wants other arguments, say)."""
    try:
        return pickle.loads(frame)
    except Exception:  # noqa: BLE001 - told to the caller as a bug
        return None


def _own_fd(connection: Connection) -> int:
    """The connection's fd as the pool's own (the connection object no longer closes it)."""
    fd = os.dup(connection.fileno())
    connection.close()
    return fd

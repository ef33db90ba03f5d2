"""The recording proxy's socket I/O: calls straight on non-blocking sockets, a wait on the
hub only when the kernel has nothing yet, and one hub timer for every connection's deadline.

`Conn` is a plain socket driven by one greenlet: `recv` and `send` try the system call first
and wait on the connection's own read or write watcher only when it would block;
`recv_ready` waits first, for a read that cannot have its bytes yet (the answer to a request
just sent, the next request of a client just answered), saving the call that would fail.
`TLSConn` gives gevent's TLS socket the same methods. No socket has a timeout: `Deadlines`
holds one deadline per greenlet (a time and the exception to raise), set at each change of
phase, and a repeating hub timer throws the exception into any greenlet whose deadline has
passed, as gevent's Timeout would, but without a timer started and stopped for each wait.
A deadline fires up to one tick late; the tick is a fraction of the shortest timeout.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from gevent import get_hub, getcurrent

_READ, _WRITE = 1, 2
_WOKEN = object()  # what the read watcher's callback switches into its reader with


class Conn:
    """A non-blocking plain TCP socket read and written from one greenlet."""

    __slots__ = ("_read", "_reader", "_switch", "_wait", "_write", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        hub = get_hub()
        self.sock = sock
        self._read = hub.loop.io(sock.fileno(), _READ)
        self._write = hub.loop.io(sock.fileno(), _WRITE)
        self._reader: Any = None  # the greenlet waiting to read, if one is
        self._switch = hub.switch
        self._wait = hub.wait

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes (b"" at the end of the stream), waiting for them if need be."""
        while True:
            try:
                return self.sock.recv(size)
            except BlockingIOError:
                self._readable()

    def recv_ready(self, size: int) -> bytes:
        """`recv` for bytes that cannot be there yet: wait until the socket is readable."""
        self._readable()
        return self.recv(size)

    def _readable(self) -> None:
        """Until the socket is readable. The read watcher stays started after the wait (it
        is stopped only when it fires with no one waiting), so that waiting again costs the
        event loop no change of what it polls: no system call."""
        if not self._read.active:
            self._read.start(self._wake)
        self._reader = getcurrent()
        try:
            while self._switch() is not _WOKEN:
                pass
        finally:
            self._reader = None

    def _wake(self) -> None:
        reader = self._reader
        if reader is None:
            self._read.stop()
        else:
            reader.switch(_WOKEN)

    def send(self, data: bytes | memoryview) -> int:
        """How many bytes of `data` the kernel took (at least one), waiting for room."""
        while True:
            try:
                return self.sock.send(data)
            except BlockingIOError:
                self._wait(self._write)

    def sendall(self, data: bytes) -> None:
        """All of `data`: one send() when the kernel takes it all, the usual case."""
        sent = self.send(data)
        if sent < len(data):
            view = memoryview(data)
            while sent < len(data):
                sent += self.send(view[sent:])

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self._read.close()
        self._write.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class TLSConn:
    """gevent's TLS socket (which does its own waits) behind Conn's methods."""

    __slots__ = ("sock",)

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def recv(self, size: int) -> bytes:
        data: bytes = self.sock.recv(size)
        return data

    recv_ready = recv

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def fileno(self) -> int:
        fd: int = self.sock.fileno()
        return fd

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def plain(gsock: Any) -> Conn:
    """A Conn on the descriptor of a gevent socket (which lets go of it)."""
    return Conn(socket.socket(fileno=gsock.detach()))


class Deadlines:
    """Per-greenlet deadlines, checked every `tick_s` by one repeating hub timer.

    `slot()` registers the calling greenlet and returns its slot, a two-item list: the
    monotonic time after which it must stop, and the exception it then gets. The greenlet
    sets both at each change of phase and calls `release()` when it ends."""

    def __init__(self, tick_s: float) -> None:
        self.tick_s = tick_s
        self._slots: dict[Any, list[Any]] = {}
        self._timer: Any = None

    def start(self) -> None:
        if self._timer is None:
            self._timer = get_hub().loop.timer(self.tick_s, self.tick_s)
            self._timer.start(self._sweep)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def slot(self, greenlet: Any) -> list[Any]:
        slot: list[Any] = [float("inf"), None]
        self._slots[greenlet] = slot
        return slot

    def release(self, greenlet: Any) -> None:
        self._slots.pop(greenlet, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        late = [(g, s) for g, s in self._slots.items() if s[0] < now]
        for greenlet, slot in late:
            if self._slots.get(greenlet) is not slot or slot[0] >= now:
                continue  # released, or moved on by a greenlet thrown into just before
            slot[0] = float("inf")
            if not greenlet.dead:
                greenlet.throw(slot[1])


def tick_for(*timeouts: float) -> float:
    """How often deadlines are checked: an eighth of the shortest timeout, 10 ms to 1 s."""
    return min(1.0, max(0.01, min(timeouts) / 8))

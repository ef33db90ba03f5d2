"""A worker's end of its two pipes to the coordinator: framed msgpack, cooperative under gevent."""

from __future__ import annotations

from typing import Any

import gevent.lock
import gevent.os
import msgpack


class Pipe:
    """Framed msgpack messages over a pair of pipe fds, cooperative under gevent.

    A message larger than the pipe's buffer is written in pieces, the greenlet waiting for
    the coordinator to read in between: `lock` (re-entrant) keeps another greenlet's
    message from landing in the middle, and whoever kills a sender holds it first, so that
    no message is cut.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:

        self._read_fd, self._write_fd = read_fd, write_fd
        gevent.os.make_nonblocking(read_fd)
        gevent.os.make_nonblocking(write_fd)
        self._unpacker = msgpack.Unpacker(raw=False)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._nb_read = gevent.os.nb_read
        self._nb_write = gevent.os.nb_write
        self.lock = gevent.lock.RLock()

    def send(self, *message: Any) -> None:
        data = memoryview(self._packer.pack(list(message)))
        with self.lock:
            while data:
                written = self._nb_write(self._write_fd, data)
                data = data[written:]

    def receive(self) -> Any:
        """The next message; None when the coordinator has gone."""
        while True:
            for message in self._unpacker:
                return message
            chunk = self._nb_read(self._read_fd, 65536)
            if not chunk:
                return None
            self._unpacker.feed(chunk)

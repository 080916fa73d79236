"""A doorbell for the worker: the web process rings when it queues a send pass, so an idle worker starts at once.

huey's SQLite storage cannot block on an empty queue, so its consumer polls, sleeping longer
the longer the queue stays empty. A worker that sleeps a tenth of a second between looks starts
a letter that late and spends ~1% of a core looking; one that sleeps two seconds is cheap and
slow. The doorbell makes it both: the worker binds a Unix datagram socket named after its
queue (in Linux's abstract namespace, so no file is left behind and the instance path's length
does not matter) and sleeps on it; ``ring`` sends it one byte, never waiting and never failing.
Where the socket cannot be bound (another worker has it, not Linux) the worker polls as before;
Redis storage blocks on the queue itself and needs no bell.
"""
from __future__ import annotations

import hashlib
import select
import socket
import sys


def address_for(queue_file: str) -> bytes:
    """The abstract socket name shared by the web process and the worker of one queue file."""
    return b"\0portal-doorbell-" + hashlib.sha256(queue_file.encode()).hexdigest()[:24].encode()


class Doorbell:
    """The worker's side: bound once, waited on by every worker thread."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    @classmethod
    def bind(cls, queue_file: str) -> Doorbell | None:
        """The doorbell for this queue, or None where it cannot be had (polling then)."""
        if not sys.platform.startswith("linux"):
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(address_for(queue_file))
        except OSError:  # another worker of this queue holds it
            sock.close()
            return None
        sock.setblocking(False)
        return cls(sock)

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or ``timeout`` seconds pass; whether it was rung (rings meanwhile are taken too)."""
        readable, _, _ = select.select([self._sock], [], [], timeout)
        if not readable:
            return False
        try:
            while self._sock.recv(64):
                pass
        except BlockingIOError:  # all taken (by this thread or another one woken by the same ring)
            pass
        return True

    def close(self) -> None:
        self._sock.close()


_ringer: socket.socket | None = None


def ring(queue_file: str) -> None:
    """Wake the worker of this queue if one sleeps on its doorbell; nothing happens otherwise."""
    global _ringer
    if not sys.platform.startswith("linux"):
        return
    try:
        if _ringer is None:
            _ringer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _ringer.setblocking(False)
        _ringer.sendto(b"\x01", address_for(queue_file))
    except OSError:  # no worker listening, or its bell already full of rings: either way nothing to do
        pass

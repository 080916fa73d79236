"""A total deadline for one conversation with mail servers, on top of the per-read timeout.

A socket timeout bounds each read, so a server that sends one byte every few
seconds never trips it. A Deadline bounds the whole attempt: every connect and
look-up gets at most the time that is left, and when the time is up a watchdog
shuts down every socket still open, which wakes any read blocked on it. The
step that was waiting then fails, and ``expired`` tells why.
"""
from __future__ import annotations

import logging
import socket
import threading
import time

from .details import detail

__all__ = ["Deadline", "DeadlineExceeded"]

log = logging.getLogger("portal.mail")


class DeadlineExceeded(TimeoutError):
    """The whole attempt took longer than its deadline (a server trickling its answer, or many slow steps)."""

    kind = "deadline_exceeded"

    def __init__(self, seconds: float) -> None:
        super().__init__(detail("deadline", seconds=f"{seconds:g}"))


class Deadline:
    """The moment by which a conversation must be over; shared by every socket the conversation opens."""

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError("a deadline must be a positive number of seconds")
        self.seconds = float(seconds)
        self.ends = time.monotonic() + self.seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.ends - time.monotonic())

    def timeout(self, per_read: float) -> float:
        """The timeout for the next blocking step: the per-read one, cut to what is left; raise if nothing is."""
        left = self.remaining()
        if left <= 0:
            self._expire()
            raise DeadlineExceeded(self.seconds)
        return min(per_read, left)

    def renew(self, seconds: float | None = None) -> None:
        """Move the deadline to ``seconds`` (by default its own length) from now: a long session's next step.

        A send pass that keeps one connection for many letters renews it before each letter, so a
        healthy session is never cut in the middle while a stalled one still is.
        """
        with self._lock:
            if self.expired:
                raise DeadlineExceeded(self.seconds)
            self.ends = time.monotonic() + (self.seconds if seconds is None else float(seconds))

    def check(self) -> None:
        """Raise DeadlineExceeded if the deadline has passed (between steps)."""
        self.timeout(self.seconds)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (a socket closed by then is left alone)."""
        with self._lock:
            if self.expired:
                _shut(sock)
                raise DeadlineExceeded(self.seconds)
            self._sockets.append(sock)
            if self._timer is None:
                self._arm()

    def close(self) -> None:
        """Stop the watchdog: the conversation is over."""
        with self._lock:
            timer, self._timer = self._timer, None
            self._sockets.clear()
        if timer is not None:
            timer.cancel()

    def _arm(self) -> None:
        self._timer = threading.Timer(self.remaining(), self._expire)
        self._timer.name = "portal-mail-deadline"
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._timer is not None and self.remaining() > 0:  # renewed meanwhile: wait for the new end
                self._arm()
                return
            self.expired = True
            sockets, self._sockets = self._sockets, []
        if sockets:
            log.info("deadline of %g s passed; shutting down %d connection(s)", self.seconds, len(sockets))
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket call on purpose, also for a TLS socket: it wakes a read blocked in another
    # thread without touching the TLS state that thread is using. A closed socket has no descriptor
    # any more (fileno -1), so a number reused by a newer connection is never shut by mistake.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass

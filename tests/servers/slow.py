"""Servers that are not good mail servers: a tarpit, other services' banners, a filtered port.

- ``TarpitServer``: greets like SMTP, but one byte every ``interval`` seconds (the trick spam tarpits use).
- ``BannerServer``: another service on the port: SSH (talks first), HTTP or HTTPS (wait for a request, then answer).
- ``FilteredPort``: a port whose connection attempts are never answered, as behind a dropping firewall.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time

from .certificates import ServerCertificate
from .smtp import HOST

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
HTTP_ANSWER = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\n"
               b"Connection: close\r\n\r\n")


def _listen(host: str, backlog: int) -> tuple[socket.socket, int]:
    """A socket listening on a free port of ``host``, and that port."""
    listener = socket.socket(socket.AF_INET)
    listener.bind((host, 0))
    listener.listen(backlog)
    return listener, listener.getsockname()[1]


class _Listener:
    """A listening socket on 127.0.0.1 whose every connection is served by ``serve`` in its own thread."""

    def __init__(self, host: str = HOST):
        self.host = host
        self._socket, self.port = _listen(host, 16)
        self.connections = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve_and_close, args=(conn,), daemon=True).start()

    def _serve_and_close(self, conn: socket.socket) -> None:
        try:
            with conn:
                self.serve(conn)
        except OSError:
            pass

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop listening and let every connection end."""
        self._stopped.set()
        self._socket.close()


class TarpitServer(_Listener):
    """Sends an SMTP greeting one byte every ``interval`` seconds, forever (or until the client hangs up)."""

    def __init__(self, interval: float = 1.0, greeting: bytes = b"220 tarpit.example ESMTP ready\r\n"):
        self.interval = interval
        self.greeting = greeting
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        while not self._stopped.is_set():
            for byte in self.greeting:
                if self._stopped.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))


class BannerServer(_Listener):
    """Another service: "ssh" sends its banner at once; "http" waits for a request line and answers 400;
    "https" does the same after a TLS handshake with ``certificate``."""

    def __init__(self, kind: str, certificate: ServerCertificate | None = None):
        if kind not in ("ssh", "http", "https"):
            raise ValueError("kind is ssh, http or https")
        self.kind = kind
        self._tls = None
        if kind == "https":
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(certificate.cert_file, certificate.key_file)
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        if self._tls is not None:
            conn.settimeout(30)
            conn = self._tls.wrap_socket(conn, server_side=True)
        if self.kind == "ssh":
            conn.sendall(SSH_BANNER)
            self._stopped.wait(30)
            return
        conn.settimeout(30)
        if conn.recv(4096):
            conn.sendall(HTTP_ANSWER)


class FilteredPort:
    """A port on 127.0.0.1 where connecting hangs: a listener whose queue is full, so the kernel drops SYNs."""

    def __init__(self, host: str = HOST):
        self.host = host
        self._socket, self.port = _listen(host, 0)
        # Linux takes backlog + 1 connections into the queue; fill it, and never accept them.
        self._fillers: list[socket.socket] = []
        for _ in range(4):
            filler = socket.socket(socket.AF_INET)
            filler.setblocking(False)
            try:
                filler.connect((host, self.port))
            except BlockingIOError:
                pass
            self._fillers.append(filler)
        time.sleep(0.05)

    def stop(self) -> None:
        """Close the listener and the connections that fill its queue."""
        for filler in self._fillers:
            filler.close()
        self._socket.close()

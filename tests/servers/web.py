"""A loopback web server whose answers each test sets per path: JSON, redirects, trickling or oversize bodies.

``WebServer.hits`` lists the paths asked, in order, so a test can tell that a redirect's target (or a kept
document) was never requested. Used by tests/test_http.py, test_openid.py and test_oauth_client.py.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from .certificates import ServerCertificate
from .smtp import HOST


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self.server.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._answer()

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits.append(path)
        self.server.headers.append(dict(self.headers))
        route = self.server.routes.get(path)
        if route is None:
            self.send_error(404)
            return
        try:
            route(self)
        except OSError:  # the client hung up (a deadline, a size cap): nothing more to send
            pass

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__((HOST, 0), _Handler)
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: list[str] = []
        self.headers: list[dict] = []
        self.bodies: list[bytes] = []


class WebServer:
    """The running server: set answers with ``json``, ``redirect``, ``trickle``, ``body``; read ``hits``."""

    def __init__(self, certificate: ServerCertificate | None = None):
        self._server = _Server()
        self.scheme = "http"
        if certificate is not None:  # HTTPS with a certificate of the test CA
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificate.cert_file, certificate.key_file)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-web-server", daemon=True)
        self._thread.start()

    @property
    def hits(self) -> list[str]:
        return self._server.hits

    @property
    def headers(self) -> list[dict]:
        return self._server.headers

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def route(self, path: str, answer: Callable[[BaseHTTPRequestHandler], None]) -> str:
        self._server.routes[path] = answer
        return self.url(path)

    def body(self, path: str, content: bytes, *, status: int = 200, content_type: str = "application/json",
             declare_length: bool = True) -> str:
        """Answer ``content``; without ``declare_length`` the body simply runs until the connection closes."""
        def answer(handler):
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            if declare_length:
                handler.send_header("Content-Length", str(len(content)))
            else:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            handler.wfile.write(content)
        return self.route(path, answer)

    def json(self, path: str, document, *, status: int = 200) -> str:
        return self.body(path, json.dumps(document).encode(), status=status)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        def answer(handler):
            handler.send_response(status)
            handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        return self.route(path, answer)

    def trickle(self, path: str, *, length: int = 1000, interval: float = 0.2) -> str:
        """Headers at once, then one byte of the body every ``interval`` seconds (each read is quick)."""
        def answer(handler):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(length))
            handler.end_headers()
            handler.wfile.flush()
            for _ in range(length):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(interval)
        return self.route(path, answer)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

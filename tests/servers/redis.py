"""A private redis-server for tests: daemonized on a free 127.0.0.1 port, nothing saved to disk."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .processes import terminate_by_pid_file
from .smtp import HOST, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """redis-server started with --daemonize; ``url`` reaches its database 0."""

    def __init__(self, root: Path):
        self.root = root
        self.port = 0
        self.pidfile = root / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start on a free port and wait until it answers PING."""
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            self.port = free_port()
            self._launch()
            if self._answers(deadline=time.monotonic() + 5):
                return self
            self.stop()  # another process took the port between free_port() and bind
        raise RuntimeError(f"redis-server did not start; see {self.root / 'redis.log'}")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, stay down ``down_for`` seconds, and start it again on the same port (empty)."""
        self.stop()
        time.sleep(down_for)
        self._launch()
        if not self._answers(deadline=time.monotonic() + 5):
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def _launch(self) -> None:
        subprocess.run([REDIS_SERVER, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no",
                        "--daemonize", "yes", "--pidfile", str(self.pidfile), "--dir", str(self.root),
                        "--logfile", str(self.root / "redis.log")], check=True, timeout=10, stdout=subprocess.DEVNULL)

    def _answers(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop the server and wait until its process has gone."""
        terminate_by_pid_file(self.pidfile)
        self.pidfile.unlink(missing_ok=True)

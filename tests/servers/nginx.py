"""A private nginx in front of a test app: HTTP basic auth that sets X-Remote-User, and a path that clears it.

The proxy connects to the app from 127.0.0.2 (``proxy_bind``), so the app can tell the proxy's requests
from a client's direct ones, which come from 127.0.0.1.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .processes import terminate_by_pid_file
from .smtp import HOST, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_ADDRESS = "127.0.0.2"


def missing_reason() -> str | None:
    if not os.path.exists(NGINX):
        return f"nginx is not installed ({NGINX}); install the Debian package nginx"
    return None


class NginxProxy:
    """``signed_in_url``: basic auth (``users``), X-Remote-User set to the user; ``public_url``: header cleared."""

    def __init__(self, root: Path, upstream: str, users: dict[str, str], header: str = "X-Remote-User"):
        self.root, self.upstream, self.users, self.header = root, upstream, users, header
        self.ports: list[int] = []
        self.pidfile = root / "nginx.pid"

    def url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports[index]}"

    @property
    def signed_in_url(self) -> str:
        return self.url(0)

    @property
    def public_url(self) -> str:
        return self.url(1)

    def _config(self) -> str:
        forward = (f"proxy_pass {self.upstream}; proxy_bind {PROXY_ADDRESS}; proxy_set_header Host $http_host; "
                   "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
                   "proxy_set_header X-Forwarded-Proto $scheme;")
        user = "user root;" if os.geteuid() == 0 else ""
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = " ".join(f"{kind}_temp_path {self.root / kind};" for kind in kinds)
        return f"""{user}
daemon on; pid {self.pidfile}; error_log {self.root / 'error.log'};
events {{ worker_connections 64; }}
http {{
  access_log off; {temp}
  server {{ listen {HOST}:{self.ports[0]};
    location / {{ auth_basic "Company"; auth_basic_user_file {self.root / 'htpasswd'};
      {forward} proxy_set_header {self.header} $remote_user; }} }}
  server {{ listen {HOST}:{self.ports[1]};
    location / {{ {forward} proxy_set_header {self.header} ""; }} }}
}}
"""

    def start(self) -> "NginxProxy":
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "htpasswd").write_text("".join(f"{name}:{{PLAIN}}{password}\n"
                                                    for name, password in self.users.items()))
        self.ports = [free_port() for _ in range(2)]
        (self.root / "nginx.conf").write_text(self._config())
        subprocess.run([NGINX, "-c", str(self.root / "nginx.conf"), "-p", str(self.root), "-e",
                        str(self.root / "error.log")], check=True, capture_output=True, timeout=20)
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not start; see {self.root / 'error.log'}") from None
                    time.sleep(0.02)
        return self

    def stop(self) -> None:
        terminate_by_pid_file(self.pidfile)

"""A private nginx (Debian's binary, never the system instance) in the foreground, on free loopback ports.

Two sites run in it:
- ``NginxServer``: deploy/nginx-prefix.conf itself, the portal under /mail/ over HTTPS. Only what must differ
  on a test machine is rewritten (the ports, the certificate, the upstream's address, IPv6 listeners), so
  the headers, the prefix and the timeouts under test are the ones an operator installs.
- ``NginxProxy``: the company's sign-in proxy in front of a test app: HTTP basic auth that sets
  X-Remote-User, and a second port that clears it. It connects to the app from 127.0.0.2 (``proxy_bind``),
  so the app can tell the proxy's requests from a client's direct ones, which come from 127.0.0.1.
"""
from __future__ import annotations

import abc
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .certificates import make_certificate
from .processes import stop_process
from .smtp import HOST, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ROOT = Path(__file__).resolve().parent.parent.parent
PREFIX_SITE = ROOT / "deploy" / "nginx-prefix.conf"
PROXY_ADDRESS = "127.0.0.2"


def missing_reason() -> str | None:
    if not os.path.exists(NGINX):
        return f"nginx is not installed ({NGINX}); install the Debian package nginx"
    return None


class PrivateNginx(abc.ABC):
    """nginx with its own prefix folder, running ``http_block()`` in the foreground; waits for ``ports``."""

    def __init__(self, root: Path):
        self.root = root
        self.ports: list[int] = []
        self.process = None

    @abc.abstractmethod
    def http_block(self) -> str:
        """What goes inside ``http { }``: the servers, and the files they need written."""

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in ("tmp", "logs"):
            (self.root / folder).mkdir(exist_ok=True)
        temp = self.root / "tmp"
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        config = self.root / "nginx.conf"
        config.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {self.root}/logs/access.log;
    {" ".join(f"{kind}_temp_path {temp}/{kind};" for kind in kinds)}
    {self.http_block()}
}}
""")
        return config

    def start(self):
        config = self.write_config()
        command = [NGINX, "-p", str(self.root), "-e", str(self.root / "logs" / "error.log"), "-c", str(config)]
        check = subprocess.run(command + ["-t"], capture_output=True, text=True, timeout=20)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the configuration: {check.stderr}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nginx stopped: {self.process.stderr.read().decode()}")
                try:
                    socket.create_connection((HOST, port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not listen within 10 s; see {self.root}/logs") from None
                    time.sleep(0.02)
        return self

    def stop(self) -> None:
        stop_process(self.process)


def site_for_test(text: str, *, https_port: int, http_port: int, upstream: str, cert, key) -> str:
    """deploy/'s site with this machine's ports, certificate and upstream; everything else as shipped."""
    text = re.sub(r"server 127\.0\.0\.1:8000;", f"server {upstream};", text)
    text = re.sub(r"^\s*listen \[::\]:\d+[^;]*;\n", "", text, flags=re.M)
    text = re.sub(r"listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl", text)
    text = re.sub(r"listen 80;", f"listen 127.0.0.1:{http_port};", text)
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    return text


class NginxServer(PrivateNginx):
    """deploy/'s site (or ``site``) in front of ``upstream``; ``url`` is the https base (no trailing slash)."""

    def __init__(self, root: Path, upstream: str, site: Path = PREFIX_SITE):
        super().__init__(root)
        self.upstream, self.site = upstream, site
        self.https_port, self.http_port = free_port(HOST), free_port(HOST)
        self.ports = [self.https_port]
        self.certificate = None

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    def http_block(self) -> str:
        self.certificate = make_certificate(self.root / "tls", label="nginx", names=(HOST, "localhost"))
        site = site_for_test(self.site.read_text(), https_port=self.https_port, http_port=self.http_port,
                             upstream=self.upstream, cert=self.certificate.cert_file, key=self.certificate.key_file)
        (self.root / "site.conf").write_text(site)
        return f"include {self.root}/site.conf;"


class NginxProxy(PrivateNginx):
    """``signed_in_url``: basic auth (``users``), X-Remote-User set to the user; ``public_url``: header cleared."""

    def __init__(self, root: Path, upstream: str, users: dict[str, str], header: str = "X-Remote-User"):
        super().__init__(root)
        self.upstream, self.users, self.header = upstream, users, header
        self.ports = [free_port(), free_port()]

    def url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports[index]}"

    @property
    def signed_in_url(self) -> str:
        return self.url(0)

    @property
    def public_url(self) -> str:
        return self.url(1)

    def http_block(self) -> str:
        (self.root / "htpasswd").write_text("".join(f"{name}:{{PLAIN}}{password}\n"
                                                    for name, password in self.users.items()))
        forward = (f"proxy_pass {self.upstream}; proxy_bind {PROXY_ADDRESS}; proxy_set_header Host $http_host; "
                   "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
                   "proxy_set_header X-Forwarded-Proto $scheme;")
        return f"""
  server {{ listen {HOST}:{self.ports[0]};
    location / {{ auth_basic "Company"; auth_basic_user_file {self.root / 'htpasswd'};
      {forward} proxy_set_header {self.header} $remote_user; }} }}
  server {{ listen {HOST}:{self.ports[1]};
    location / {{ {forward} proxy_set_header {self.header} ""; }} }}
"""

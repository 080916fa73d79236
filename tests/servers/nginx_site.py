"""A private nginx (Debian's binary, never the system instance) serving deploy/'s site on free loopback ports.

The site file is deploy/nginx-prefix.conf itself: only what must differ on a test machine is
rewritten (the ports, the certificate, the upstream's address, IPv6 listeners), so the headers,
the prefix and the timeouts under test are the ones an operator installs.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .certificates import make_certificate
from .processes import stop_process
from .smtp import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ROOT = Path(__file__).resolve().parent.parent.parent
PREFIX_SITE = ROOT / "deploy" / "nginx-prefix.conf"


def site_for_test(text: str, *, https_port: int, http_port: int, upstream: str, cert, key) -> str:
    """deploy/'s site with this machine's ports, certificate and upstream; everything else as shipped."""
    text = re.sub(r"server 127\.0\.0\.1:8000;", f"server {upstream};", text)
    text = re.sub(r"^\s*listen \[::\]:\d+[^;]*;\n", "", text, flags=re.M)
    text = re.sub(r"listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl", text)
    text = re.sub(r"listen 80;", f"listen 127.0.0.1:{http_port};", text)
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    return text


class NginxServer:
    """nginx in the foreground with its own prefix folder; `url` is the https base (no trailing slash)."""

    def __init__(self, root: Path, upstream: str, site: Path = PREFIX_SITE):
        self.root = root
        self.upstream = upstream
        self.site = site
        self.https_port = free_port("127.0.0.1")
        self.http_port = free_port("127.0.0.1")
        self.process = None
        self.certificate = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in ("tmp", "logs"):
            (self.root / folder).mkdir(exist_ok=True)
        self.certificate = make_certificate(self.root / "tls", label="nginx", names=("127.0.0.1", "localhost"))
        site = site_for_test(self.site.read_text(), https_port=self.https_port, http_port=self.http_port,
                             upstream=self.upstream, cert=self.certificate.cert_file,
                             key=self.certificate.key_file)
        (self.root / "site.conf").write_text(site)
        temp = self.root / "tmp"
        config = self.root / "nginx.conf"
        config.write_text(f"""
worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {self.root}/logs/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {self.root}/site.conf;
}}
""")
        return config

    def start(self) -> "NginxServer":
        config = self.write_config()
        command = [NGINX, "-p", str(self.root), "-e", str(self.root / "logs" / "error.log"), "-c", str(config)]
        check = subprocess.run(command + ["-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the site: {check.stderr}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx stopped: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def stop(self) -> None:
        stop_process(self.process)

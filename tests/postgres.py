"""A throwaway PostgreSQL cluster for the database tests, when PORTAL_TEST_POSTGRES=1."""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("PORTAL_PG_BIN", "/usr/lib/postgresql/15/bin"))


def wanted():
    return os.environ.get("PORTAL_TEST_POSTGRES") == "1"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*args):
    command = [str(arg) for arg in args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Cluster:
    """A running cluster; `new_database()` gives each test an empty database of its own."""

    def __init__(self, folder, port):
        self.folder = folder
        self.port = port

    def url(self, name):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def admin_connection(self):
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        connection.autocommit = True
        return connection

    def new_database(self, template=None):
        name = "t_" + uuid.uuid4().hex[:12]
        connection = self.admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        connection.close()
        return name

    def drop_database(self, name):
        connection = self.admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


@contextlib.contextmanager
def running_cluster():
    """A private cluster on a free loopback port, stopped and removed afterwards (the benchmarks use it too)."""
    folder = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = _free_port()
    _as_postgres(PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
                 "--locale=C.UTF-8")
    _as_postgres(PG_BIN / "pg_ctl", "-D", data, "-l", folder / "pg.log", "-w", "-o",
                 f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                 "-c synchronous_commit=off -c full_page_writes=off", "start")
    try:
        yield Cluster(folder, port)
    finally:
        _as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster():
    """Start a private cluster on a free loopback port for the whole run; skip (fail in CI) without it."""
    if not (PG_BIN / "initdb").exists():
        message = f"PostgreSQL is not installed at {PG_BIN} (set PORTAL_PG_BIN)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with running_cluster() as cluster:
        yield cluster

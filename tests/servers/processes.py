"""Stopping a daemon a test started, by the pid file it wrote."""
import os
import signal
import time


def terminate_by_pid_file(pid_file, timeout=10.0):
    """SIGTERM the process named in the pid file and wait (up to `timeout`) until it has exited."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)

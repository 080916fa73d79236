"""Stopping a server a test started: a daemon by the pid file it wrote, or a child process."""
import os
import signal
import subprocess
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


def stop_process(process, timeout=10.0):
    """SIGTERM a child process and wait up to `timeout` for it; kill it if it does not go."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
